"""The dashboard's state: this browser session's runs and settings (mirrored into the URL), the server's one
cached connection to the results store, the count of connected sessions and the refresh interval it sets. No
drawing happens here."""

"""The sidebar's settings as a flat dict, their limits, and their round trip through the URL's query string.

The vocabulary itself lives in :mod:`vaegmm.model.params` (no Streamlit), so the sweep grid, the CLI's ``--grid`` and the
URL share one parser; this module re-exports it under the names the pages and tests have always used.
"""
from __future__ import annotations

from vaegmm.model.params import (DEFAULT_PRESET, FIELDS, GMM_LABELS, KEYS, MAX_IMAGES, MNIST_MIN_PER_DIGIT, PRESET_LABELS,  # noqa: F401
                           Field, apply_settings, check_settings, config_from_settings, data_note, default_settings,
                           describe, expected, format_value, parse_query, parse_value, parse_values,
                           preset_settings, settings_equal, settings_from_config, to_query)
from vaegmm.model.params import _per_digit  # noqa: F401

# the private names this module had before the move
_fmt = format_value
_parse_value = parse_value
_expect = expected

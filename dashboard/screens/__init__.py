"""One screen per page (live run, saved run, compare runs, latent explorer, how it works, sweeps): the page's
layout, drawn from components; the page files in ``pages/`` only call these."""

"""Sweeps: a grid of settings x seeds, run in parallel, every result kept in the store.

* :mod:`~vaegmm.sweeps.spec`: what a sweep is (:class:`SweepSpec`: base config, axes, seeds -> cells x seeds).
* :mod:`~vaegmm.sweeps.cell`: :func:`run_one` trains one (config, seed), the same under both engines.
* :mod:`~vaegmm.sweeps.executors`: where runs train (a local process pool, :mod:`~vaegmm.sweeps.pool_worker`, or Ray).
* :mod:`~vaegmm.sweeps.driver`: :class:`SweepDriver`, the only writer of a sweep's results.
* :mod:`~vaegmm.sweeps.manager`: sweeps driven in background threads of a server (:func:`get_manager`).
* :mod:`~vaegmm.sweeps.results`, :mod:`~vaegmm.sweeps.stats`: tables and paired comparisons over seeds.
* :mod:`~vaegmm.sweeps.estimate`: how long a sweep will take; :mod:`~vaegmm.sweeps.measured`: the quoted effect.

No Streamlit here.
"""

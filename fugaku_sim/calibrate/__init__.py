"""Close the loop: calibrate a cluster profile from microbenchmarks, and check predictions
against measured training runs.

Modules, in the order the loop uses them:

- :mod:`~fugaku_sim.calibrate.bench` — mpi4py microbenchmarks run under ``mpiexec``
  (suites ``compute``, ``share``, ``comm``), JSON from rank 0;
- :mod:`~fugaku_sim.calibrate.launch` — start MPI subprocesses (``mpiexec``/``srun``
  template, one BLAS thread per rank);
- :mod:`~fugaku_sim.calibrate.measure` — which suite runs on how many ranks;
- :mod:`~fugaku_sim.calibrate.fit` — pure fitting functions (alpha-beta, GEMM curve,
  per-op overhead, effective bandwidth, compute share);
- :mod:`~fugaku_sim.calibrate.kernels` — the trainer's timed kernels as the simulator
  prices them; per-element costs of non-GEMM ops fitted to them;
- :mod:`~fugaku_sim.calibrate.calibration` — measurements -> fitted figures
  (:class:`~fugaku_sim.calibrate.calibration.Calibration`);
- :mod:`~fugaku_sim.calibrate.profile` — fitted figures -> calibrated ``ClusterSpec``;
- :mod:`~fugaku_sim.calibrate.record` — the profile YAML (comment header with provenance)
  and its ``<name>.measurements.json`` sidecar (provenance, the fits, the ``occupancy``
  section and every raw row);
- :mod:`~fugaku_sim.calibrate.provenance` — date, host, CPU, versions, load, command;
- :mod:`~fugaku_sim.calibrate.runs`, :mod:`~fugaku_sim.calibrate.synthetic`,
  :mod:`~fugaku_sim.calibrate.execute` — the validation run set, synthetic tokens, and
  running the real trainer;
- :mod:`~fugaku_sim.calibrate.compare` — measured run + simulator prediction -> rows,
  errors, fastest-layout agreement;
- :mod:`~fugaku_sim.calibrate.report` — rich table, ``compare.{json,csv,md,png}``;
- :mod:`~fugaku_sim.calibrate.measured` — measured runs as data: the runs format (CSV, one
  row per measured configuration with its source), reader, writer and each row's ``Job``;
  :mod:`~fugaku_sim.calibrate.megatron_log` and :mod:`~fugaku_sim.calibrate.trainer_log`
  import Megatron logs and this project's runs into it; :mod:`~fugaku_sim.calibrate.published`
  turns published throughput into step time.

Command line: ``fugaku-sim calibrate``, ``fugaku-sim validate`` and ``fugaku-sim runs`` (see
their modules in ``fugaku_sim.commands``); ``benchmarks/bench_validate.py`` runs the first two
and checks the targets.
"""

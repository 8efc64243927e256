"""Few-shot performance prediction for resource-configuration search (FLASH case study I).

* :mod:`~flash_rl.fewshot.episodes` — few-shot episodes drawn from measured applications;
* :mod:`~flash_rl.fewshot.models` — the base learner, FLASH's shot encoder, episodic training, the baselines;
* :mod:`~flash_rl.fewshot.matrix_completion` — the matrix-completion baseline (collaborative filtering);
* :mod:`~flash_rl.fewshot.train_config` — the hyper-parameters every learned predictor shares;
* :mod:`~flash_rl.fewshot.splits` — held-out splits: applications held out whole, alone or in groups;
* :mod:`~flash_rl.fewshot.evaluate` — held-out evaluation (the protocol: MAPE, choice regret per app);
* :mod:`~flash_rl.fewshot.report` — summaries with bootstrap CIs, paired differences, the Table-2 layout, a plot;
* :mod:`~flash_rl.fewshot.diagnose` — why the methods choose as they do (``flash config-eval --diagnose``);
* :mod:`~flash_rl.fewshot.predictor` — a trained predictor as one object: fit, predict from named shots, choose, save;
* :mod:`~flash_rl.fewshot.cli` — ``flash config-eval``.
"""

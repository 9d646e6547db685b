"""What each command does, one module per command, named after it: ``predict``,
``evaluate``, ``compare``, ``search`` (and ``optuna_search``, the search shared through a
database), ``ablate``, ``audit``, ``export``, ``inspect``, ``demo``. They work over runs,
graders and the lower layers; the CLI and the service call them."""

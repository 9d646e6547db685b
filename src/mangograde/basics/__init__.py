"""The basics every layer may use: settings and presets (``config``), errors, atomic
writes, output checks and progress bars. They import nothing else of mangograde."""

"""Studies that train models and use the metrics: :mod:`.roar` (Remove And Retrain on the MSLD
classifier) and :mod:`.shortcut` (a planted shortcut and how well each method finds it)."""

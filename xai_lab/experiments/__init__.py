"""Studies that train models and use the metrics: :mod:`.roar` (Remove And Retrain on the MSLD
classifier), :mod:`.shortcut` (a planted shortcut and how well each method finds it) and
:mod:`.monkeypox` (the MSLD classifier's data, split leak, chosen cases, image edits and the
skin-tone confound)."""

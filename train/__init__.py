"""Training and evaluation for vidcolor's networks (`python -m train`, `python -m train.evaluate`)."""

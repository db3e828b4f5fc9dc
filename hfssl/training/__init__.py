"""Pretraining with the Hugging Face Trainer: arguments, objectives, data preparation, the SSL Trainer, monitors
and the run directory. `hfssl.training.pretrain.pretrain` runs a whole pretraining stage."""

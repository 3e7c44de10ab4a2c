"""Taking a trained model out of the lab: export, compression and serving."""

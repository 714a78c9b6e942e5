-- After filling and vacuuming: a checkpoint, so none is forced inside a measurement.
checkpoint

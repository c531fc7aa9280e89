"""Methods built on the Distiller: several teachers, chains, lifelong learning,
keras.distillation's spellings.

Import them from `keras_kd` (`keras_kd.fuse`, `keras_kd.distill_chain`,
`keras_kd.learn_without_forgetting`) or from their modules
(`keras_kd.methods.compat`, `keras_kd.methods.lifelong`...).
"""

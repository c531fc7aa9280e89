"""Deployment: TFLite (LiteRT) export and its check, evaluation reports.

Import them from `keras_kd` (`keras_kd.export_tflite`, `keras_kd.evaluate_models`...).
"""

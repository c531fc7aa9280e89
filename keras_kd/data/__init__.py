"""Data paths: the one batch format, cached teacher logits, replayed views,
consistent augmentation.

Example:

```python
cache = keras_kd.data.TeacherCache.compute(teacher, examples)
distiller.fit(cache.attach(examples).batch(256))
```
"""

from keras_kd.data import batch_format
from keras_kd.data.augmentation import ConsistentAugmentation
from keras_kd.data.augmentation import Mix
from keras_kd.data.cache import TeacherCache
from keras_kd.data.replay import ReplayCache

__all__ = ["ConsistentAugmentation", "Mix", "ReplayCache", "TeacherCache", "batch_format"]

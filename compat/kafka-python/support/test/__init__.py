# Stand-in for kafka-python's test/__init__.py, which its PyPI sdist does not ship
# (compat/kafka-python/README.md). Without a regular package here, `import test` would
# find the standard library's `test` package instead of kafka-python's tests.
# Like upstream, fail loudly when a Future callback raises during tests.
from kafka.future import Future

Future.error_on_callbacks = True

from tests.support import models_dir  # noqa: F401  (fixture)

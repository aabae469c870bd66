"""Fixtures every test module may use: the real-model directory, the linked chat program."""
from tests.app_helpers import chat_efi  # noqa: F401  (fixture)
from tests.support import models_dir  # noqa: F401  (fixture)

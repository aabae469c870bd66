"""peasm.ggml's type declaration against gguf-py's independent statement of ggml's types."""
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

from peasm import ggml


def test_every_declared_type_matches_gguf_py():
    for t in ggml.FILE_TYPES:
        q = GGMLQuantizationType(t.id)
        assert q.name == t.name
        if t.name == "Q8_1":      # in-memory activation format only; gguf-py lists the
            continue              # retired f32-scaled layout (40 bytes), ggml uses 36
        assert GGML_QUANT_SIZES[q] == (t.block_size, t.block_bytes), t.name


def test_every_gguf_py_type_is_declared():
    assert {q.value for q in GGMLQuantizationType} <= set(ggml.BY_ID)


def test_internal_types_are_their_base_in_another_layout():
    assert ggml.INTERNAL_BASE >= ggml.TYPE_COUNT
    for t in ggml.INTERNAL_TYPES:
        base = ggml.BY_NAME[t.base]
        assert t.id >= ggml.INTERNAL_BASE and t.id not in ggml.FILE_BY_ID
        assert (t.block_size, t.block_bytes, t.vec_dot_type) == \
            (base.block_size, base.block_bytes, base.vec_dot_type)
        assert t.group_rows == ggml.R8_GROUP and not ggml.runnable(t)
        assert ggml.R8_OF[t.base] == t.name


def test_vec_dot_types_are_activation_formats():
    for t in ggml.TYPES:
        if t.vec_dot_type and t.vec_dot_type != "F32":
            assert "from_float" in ggml.BY_NAME[t.vec_dot_type].bodies, t.name


def test_generated_includes_name_every_row():
    inc = ggml.render_include()
    for t in ggml.TYPES:
        assert f".equ GGML_TYPE_{t.name}, {t.id}\n" in inc
    assert f".equ GGML_TABLE_ROWS, {ggml.TABLE_ROWS}\n" in inc
    table = ggml.render_table()
    assert table.count("    .long ") == len(ggml.TYPES)

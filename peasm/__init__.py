"""peasm: hand-written x86-64 assembly to PE32+ UEFI applications, from Python alone.

Pipeline (see README): preprocess (peasm.source) -> one assembly unit per program
(peasm.linker) -> backend (peasm.backends) at two image bases -> DIR64 relocations from the
difference -> PE32+ through LIEF (peasm.pe).
"""
__version__ = "0.1.0"

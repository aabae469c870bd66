"""The transformer's math kernels in x86-64 assembly (package data: the .s/.inc files and kernels.toml)."""

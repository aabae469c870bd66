"""UEFI runtime in x86-64 assembly (package data: the .s/.inc files and program manifests)."""

"""The chat program in x86-64 assembly (package data: .s/.inc files and the chat.toml manifest)."""

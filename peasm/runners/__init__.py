"""Ways to run the same machine code: unicorn (emu), native, and the hosted firmware model."""

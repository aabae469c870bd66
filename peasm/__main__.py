from peasm.cli import main

main()

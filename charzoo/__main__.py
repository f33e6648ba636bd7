from charzoo.cli import main

main()

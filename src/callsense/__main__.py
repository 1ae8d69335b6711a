from callsense.cli.app import main

main()

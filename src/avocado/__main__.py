from avocado.cli import main

main()

from doorvoer.cli import main

main()

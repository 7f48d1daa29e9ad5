# The loud greeter shouts at the world.
sleep 1
[ "$(dist/greet-loud)" = "HELLO, WORLD!" ]

# The plain greeter greets the world by default.
sleep 2
[ "$(dist/greet-plain)" = "hello, world" ]

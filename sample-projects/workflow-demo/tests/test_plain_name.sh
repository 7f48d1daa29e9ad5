# The plain greeter greets by name.
[ "$(dist/greet-plain ada)" = "hello, ada" ]

# The loud greeter shouts the name.
[ "$(dist/greet-loud grace)" = "HELLO, GRACE!" ]

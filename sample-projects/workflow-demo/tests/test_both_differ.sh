# The two flavors say different things.
sleep 1
[ "$(dist/greet-plain x)" != "$(dist/greet-loud x)" ]

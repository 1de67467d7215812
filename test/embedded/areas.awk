# areas.awk - maps each function of the headers to the section banner it
# sits under ("/* Timers: a top-down splay tree */" -> Timers). Prints
# "name<TAB>header: area" lines; size.sh adds the library's code up by area.
FNR == 1 { hdr = FILENAME; sub(/.*\//, "", hdr); area = "(top)" }
/^\/\* -+ \*\/$/ { banner = 1; next }
banner == 1 && /^\/\* / {
    t = $0; sub(/^\/\* /, "", t); sub(/ *\*\/$/, "", t); sub(/[:(].*/, "", t); sub(/ +$/, "", t)
    area = t; banner = 0; next
}
{ banner = 0 }
/^CORO(__COLD)?_API / {
    l = $0; sub(/\(.*/, "", l); n = split(l, w, /[ *]+/)
    a = area
    if (a == "Signals" && w[n] !~ /signal|xchg/) a = "The loop"
    printf "%s\t%s: %s\n", w[n], hdr, a
}

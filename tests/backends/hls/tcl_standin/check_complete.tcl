# tclsh check_complete.tcl FILE ...: print "FILE: complete" or "FILE: incomplete" for each file
# (Tcl's `info complete` on the whole text: balanced braces, brackets and quotes) and exit 1 if
# any is incomplete.  Parses only; runs nothing.
set status 0
foreach path $argv {
    set fh [open $path r]
    set text [read $fh]
    close $fh
    if {[info complete $text]} {
        puts "$path: complete"
    } else {
        puts "$path: incomplete"
        set status 1
    }
}
exit $status

# Shared part of the Vitis HLS / Vivado stand-ins used by qfx's Tcl tests.
#
# THIS IS NOT VIVADO. The stand-ins define procs named like the tool commands the generated
# scripts call; each call is appended to a log (one line per call: the command name and its
# arguments separated by the ASCII unit separator 0x1f, newlines written as \n) and returns a
# plausible value. Any command the stand-ins do not define is logged as UNKNOWN by the `unknown`
# handler below, so a test can assert that a script calls nothing but the known tool commands.

set ::standin_sep \x1f

proc standin_record {name args} {
    set fields [list $name]
    foreach a $args {
        lappend fields [string map [list \n {\n} \r {\r}] $a]
    }
    set fh [open $::standin_log a]
    puts $fh [join $fields $::standin_sep]
    close $fh
}

# A stand-in command failing the way the tool would: the script sees a Tcl error.
proc standin_fail {msg} {
    return -code error -level 2 "standin: $msg"
}

# Commands that are not defined are recorded (not executed) and return "". Commands Tcl itself
# loads on demand (auto_index) still go to the original handler.
rename unknown standin_original_unknown
proc unknown {args} {
    set name [lindex $args 0]
    if {[info exists ::auto_index($name)]} {
        return [uplevel 1 [list standin_original_unknown {*}$args]]
    }
    standin_record UNKNOWN {*}$args
    return ""
}

# `exit` ends the script being run (the runner turns it into the process exit status).
rename exit standin_real_exit
proc exit {{status 0}} {
    standin_record exit $status
    return -code error -errorcode [list STANDIN EXIT $status] "exit $status"
}

# Options of a command call: standin_options args {-flag ...} {-opt_with_value ...} -> dict with
# the options found and the key "" holding the remaining positional words.
proc standin_options {argv flags valued} {
    set out [dict create]
    set rest {}
    for {set i 0} {$i < [llength $argv]} {incr i} {
        set a [lindex $argv $i]
        if {$a in $flags} {
            dict set out $a 1
        } elseif {$a in $valued} {
            incr i
            if {$i >= [llength $argv]} {
                standin_fail "option $a needs a value"
            }
            dict set out $a [lindex $argv $i]
        } elseif {[string match -* $a]} {
            standin_fail "unknown option $a"
        } else {
            lappend rest $a
        }
    }
    dict set out "" $rest
    return $out
}

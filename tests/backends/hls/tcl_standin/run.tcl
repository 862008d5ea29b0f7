# Runs a generated qfx Tcl script against a tool stand-in.  THIS DOES NOT RUN VIVADO.
#
#   tclsh run.tcl TOOL LOG SCRIPT [SCRIPT_ARG ...]
#
# TOOL: vitis_hls, vivado_hls (rejects open_solution -flow_target, as Vivado HLS does) or vivado.
# Environment: STANDIN_BOARD_PARTS (installed board parts, space separated),
# STANDIN_IP_INTERFACES (the HLS IP's interfaces as a Tcl list of {name kind mode}),
# STANDIN_IMPL_FAIL=1 (implementation stops early), STANDIN_NO_HWH=1 (no .hwh is written).
# Exit status: that of the script's `exit` (0 if it ends without one), 1 on a Tcl error, which
# is also logged as an ERROR line.

set standin_dir [file dirname [file normalize [info script]]]
if {$argc < 3} {
    puts stderr "usage: tclsh run.tcl TOOL LOG SCRIPT \[ARG ...\]"
    exit 2
}
lassign $argv ::standin_tool ::standin_log standin_script
set standin_args [lrange $argv 3 end]
set standin_script [file normalize $standin_script]

source [file join $standin_dir common.tcl]
switch -- $::standin_tool {
    vitis_hls - vivado_hls { source [file join $standin_dir hls.tcl] }
    vivado { source [file join $standin_dir vivado.tcl] }
    default {
        puts stderr "unknown tool $::standin_tool: allowed vitis_hls, vivado_hls, vivado"
        standin_real_exit 2
    }
}

set ::argv $standin_args
set ::argc [llength $standin_args]
set ::argv0 $standin_script
if {[catch {uplevel #0 [list source $standin_script]} standin_msg standin_opts]} {
    set code [dict get $standin_opts -errorcode]
    if {[lindex $code 0] eq "STANDIN" && [lindex $code 1] eq "EXIT"} {
        standin_real_exit [lindex $code 2]
    }
    standin_record ERROR $standin_msg
    puts stderr "ERROR: $standin_msg"
    standin_real_exit 1
}
standin_real_exit 0

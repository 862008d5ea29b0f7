# Vitis HLS / Vivado HLS stand-in.  THIS IS NOT VITIS HLS: see common.tcl.
#
# The procs check what the real tool would reject (a solution command before open_solution,
# files that do not exist, cosim/export without synthesis, -flow_target under Vivado HLS) and
# leave the files the real tool leaves that later steps look for: the project directory, the
# synthesis report and the exported IP's component.xml (read by the Vivado stand-in).

array set ::hls {project "" solution "" top "" part "" period "" tb_files 0}

proc standin_need_solution {cmd} {
    if {$::hls(solution) eq ""} {
        standin_fail "$cmd: no solution is open (call open_solution first)"
    }
}

proc standin_solution_dir {} {
    return [file join $::hls(project) $::hls(solution)]
}

proc open_project {args} {
    standin_record open_project {*}$args
    set o [standin_options $args {-reset} {}]
    set rest [dict get $o ""]
    if {[llength $rest] != 1} {
        standin_fail "open_project: expected one project name, got '$rest'"
    }
    set name [lindex $rest 0]
    if {[dict exists $o -reset]} {
        file delete -force $name
    }
    file mkdir $name
    set ::hls(project) $name
    set ::hls(solution) ""
    return ""
}

proc set_top {args} {
    standin_record set_top {*}$args
    if {$::hls(project) eq ""} {
        standin_fail "set_top: no project is open"
    }
    if {[llength $args] != 1} {
        standin_fail "set_top: expected one name"
    }
    set ::hls(top) [lindex $args 0]
    return ""
}

proc add_files {args} {
    standin_record add_files {*}$args
    if {$::hls(project) eq ""} {
        standin_fail "add_files: no project is open"
    }
    set o [standin_options $args {-tb} {-cflags -csimflags}]
    foreach f [dict get $o ""] {
        if {![file exists $f]} {
            standin_fail "add_files: no such file or directory: $f (cwd [pwd])"
        }
    }
    if {[dict exists $o -tb]} {
        incr ::hls(tb_files) [llength [dict get $o ""]]
    }
    return ""
}

proc open_solution {args} {
    standin_record open_solution {*}$args
    if {$::hls(project) eq ""} {
        standin_fail "open_solution: no project is open"
    }
    if {$::standin_tool eq "vivado_hls"} {
        set o [standin_options $args {-reset} {}]
    } else {
        set o [standin_options $args {-reset} {-flow_target}]
        if {[dict exists $o -flow_target] && [dict get $o -flow_target] ni {vivado vitis}} {
            standin_fail "open_solution: bad -flow_target [dict get $o -flow_target]"
        }
    }
    set rest [dict get $o ""]
    if {[llength $rest] != 1} {
        standin_fail "open_solution: expected one solution name, got '$rest'"
    }
    set ::hls(solution) [lindex $rest 0]
    set dir [standin_solution_dir]
    if {[dict exists $o -reset]} {
        file delete -force $dir
    }
    file mkdir $dir
    return ""
}

proc set_part {args} {
    standin_record set_part {*}$args
    standin_need_solution set_part
    if {[llength $args] != 1} {
        standin_fail "set_part: expected one part"
    }
    set ::hls(part) [lindex $args 0]
    return ""
}

proc create_clock {args} {
    standin_record create_clock {*}$args
    standin_need_solution create_clock
    set o [standin_options $args {} {-period -name}]
    if {![dict exists $o -period] || ![string is double -strict [dict get $o -period]]} {
        standin_fail "create_clock: -period must be a number of ns"
    }
    set ::hls(period) [dict get $o -period]
    return ""
}

proc set_clock_uncertainty {args} {
    standin_record set_clock_uncertainty {*}$args
    standin_need_solution set_clock_uncertainty
    return ""
}

proc csim_design {args} {
    standin_record csim_design {*}$args
    standin_need_solution csim_design
    standin_options $args {-clean -O -setup -profile} {-argv -ldflags -mflags}
    if {$::hls(tb_files) == 0} {
        standin_fail "csim_design: no testbench files"
    }
    return ""
}

proc csynth_design {args} {
    standin_record csynth_design {*}$args
    standin_need_solution csynth_design
    if {$::hls(top) eq "" || $::hls(part) eq "" || $::hls(period) eq ""} {
        standin_fail "csynth_design: top, part and clock must be set"
    }
    set report [file join [standin_solution_dir] syn report $::hls(top)_csynth.rpt]
    file mkdir [file dirname $report]
    set fh [open $report w]
    puts $fh "stand-in synthesis report: top $::hls(top) part $::hls(part) period $::hls(period)"
    close $fh
    return ""
}

proc standin_need_synthesis {cmd} {
    standin_need_solution $cmd
    if {![file isdirectory [file join [standin_solution_dir] syn]]} {
        standin_fail "$cmd: the solution has not been synthesized"
    }
}

proc cosim_design {args} {
    standin_record cosim_design {*}$args
    standin_need_synthesis cosim_design
    standin_options $args {-O -setup} {-rtl -trace_level -argv -tool -ldflags -mflags}
    return ""
}

proc export_design {args} {
    standin_record export_design {*}$args
    standin_need_synthesis export_design
    set o [standin_options $args {} {-format -rtl -description -vendor -library -version -display_name}]
    if {[dict get $o -format] ne "ip_catalog"} {
        standin_fail "export_design: unexpected -format"
    }
    set ipdir [file join [standin_solution_dir] impl ip]
    file mkdir $ipdir
    set fh [open [file join $ipdir component.xml] w]
    puts $fh "<spirit:component xmlns:spirit=\"http://www.spiritconsortium.org/XMLSchema/SPIRIT/1685-2009\">"
    puts $fh "  <spirit:vendor>xilinx.com</spirit:vendor>"
    puts $fh "  <spirit:library>hls</spirit:library>"
    puts $fh "  <spirit:name>$::hls(top)</spirit:name>"
    puts $fh "  <spirit:version>1.0</spirit:version>"
    puts $fh "</spirit:component>"
    close $fh
    return ""
}

# Vivado stand-in (project mode, IP integrator).  THIS IS NOT VIVADO: see common.tcl.
#
# It keeps a small model of the project: the IP catalog (a few Xilinx IPs in more than one
# version, plus the HLS IPs whose component.xml lies in the ip_repo_paths after
# update_ip_catalog), the block-design cells and their interface pins, and the run directory.
# Commands fail where Vivado would (an IP that is not in the catalog, a pin a cell does not have,
# a CONFIG property of the wrong processing system), and launch_runs writes the files
# implementation would: the bitstream and the hardware handoff.

array set ::viv {project "" dir "" bd "" repos {} hls_ips {} bitstream_written 0}
set ::viv_cells [dict create]
set ::viv_props [dict create]

set ::viv_catalog {
    xilinx.com:ip:zynq_ultra_ps_e:3.3
    xilinx.com:ip:zynq_ultra_ps_e:3.5
    xilinx.com:ip:processing_system7:5.5
    xilinx.com:ip:axi_dma:7.0
    xilinx.com:ip:axi_dma:7.1
    xilinx.com:ip:xlconcat:2.1
}

# Interface pins {name kind mode} and plain pins of each IP, by IP name.
set ::viv_ip_intf [dict create \
    zynq_ultra_ps_e {
        {M_AXI_HPM0_FPD aximm Master} {M_AXI_HPM1_FPD aximm Master} {M_AXI_HPM0_LPD aximm Master}
        {S_AXI_HP0_FPD aximm Slave} {S_AXI_HP1_FPD aximm Slave} {S_AXI_HP2_FPD aximm Slave}
        {S_AXI_HP3_FPD aximm Slave} {S_AXI_HPC0_FPD aximm Slave} {S_AXI_HPC1_FPD aximm Slave}
        {S_AXI_LPD aximm Slave}
    } \
    processing_system7 {
        {M_AXI_GP0 aximm Master} {M_AXI_GP1 aximm Master} {S_AXI_HP0 aximm Slave}
        {S_AXI_HP1 aximm Slave} {S_AXI_HP2 aximm Slave} {S_AXI_HP3 aximm Slave}
        {DDR ddrx Master} {FIXED_IO fixedio Master}
    } \
    axi_dma {
        {S_AXI_LITE aximm Slave} {M_AXI_MM2S aximm Master} {M_AXI_S2MM aximm Master}
        {M_AXIS_MM2S axis Master} {S_AXIS_S2MM axis Slave}
    } \
    xlconcat {} \
]
set ::viv_ip_pins [dict create \
    zynq_ultra_ps_e {pl_clk0 pl_resetn0 pl_ps_irq0} \
    processing_system7 {FCLK_CLK0 FCLK_RESET0_N IRQ_F2P} \
    axi_dma {mm2s_introut s2mm_introut axi_resetn} \
    xlconcat {In0 In1 dout} \
]
if {[info exists ::env(STANDIN_IP_INTERFACES)]} {
    set ::viv_hls_intf $::env(STANDIN_IP_INTERFACES)
} else {
    set ::viv_hls_intf {{in_stream axis Slave} {out_stream axis Master} {s_axi_control aximm Slave}}
}
set ::viv_board_parts {}
if {[info exists ::env(STANDIN_BOARD_PARTS)]} {
    set ::viv_board_parts $::env(STANDIN_BOARD_PARTS)
}

proc standin_need_project {cmd} {
    if {$::viv(project) eq ""} {
        standin_fail "$cmd: no project is open"
    }
}

proc standin_need_bd {cmd} {
    standin_need_project $cmd
    if {$::viv(bd) eq ""} {
        standin_fail "$cmd: no block design is open"
    }
}

proc create_project {args} {
    standin_record create_project {*}$args
    set o [standin_options $args {-force} {-part}]
    lassign [dict get $o ""] name dir
    if {$name eq "" || $dir eq "" || ![dict exists $o -part]} {
        standin_fail "create_project: expected NAME DIR -part PART"
    }
    if {[file exists $dir] && ![dict exists $o -force]} {
        standin_fail "create_project: $dir exists (use -force)"
    }
    file delete -force $dir
    file mkdir $dir
    set ::viv(project) $name
    set ::viv(dir) $dir
    set ::viv(part) [dict get $o -part]
    return $name
}

proc current_project {args} {
    standin_record current_project {*}$args
    standin_need_project current_project
    return $::viv(project)
}

proc current_fileset {args} {
    standin_record current_fileset {*}$args
    standin_need_project current_fileset
    return sources_1
}

proc get_board_parts {args} {
    standin_record get_board_parts {*}$args
    set o [standin_options $args {-quiet -latest_file_version} {}]
    set found {}
    foreach pattern [dict get $o ""] {
        foreach bp $::viv_board_parts {
            if {[string match $pattern $bp]} {
                lappend found $bp
            }
        }
    }
    return $found
}

proc set_property {args} {
    standin_record set_property {*}$args
    if {[lindex $args 0] eq "-dict"} {
        lassign $args - pairs object
        if {[llength $pairs] % 2} {
            standin_fail "set_property -dict: odd-length list"
        }
    } else {
        lassign $args name value object
        set pairs [list $name $value]
    }
    if {$object eq ""} {
        standin_fail "set_property: no object"
    }
    foreach {name value} $pairs {
        if {[dict exists $::viv_cells $object]} {
            set ip [lindex [split [dict get $::viv_cells $object] :] 2]
            if {$ip eq "zynq_ultra_ps_e" && [string match CONFIG.* $name]
                    && ![string match CONFIG.PSU__* $name]} {
                standin_fail "set_property: $name is not a zynq_ultra_ps_e parameter"
            }
            if {$ip eq "processing_system7" && [string match CONFIG.* $name]
                    && ![string match CONFIG.PCW_* $name]} {
                standin_fail "set_property: $name is not a processing_system7 parameter"
            }
        }
        if {$name eq "ip_repo_paths"} {
            set ::viv(repos) $value
        }
        dict set ::viv_props $object $name $value
    }
    return ""
}

proc get_property {args} {
    standin_record get_property {*}$args
    lassign $args name object
    if {[dict exists $::viv_props $object $name]} {
        return [dict get $::viv_props $object $name]
    }
    switch -glob -- $name {
        CONFIG.PSU__CRL_APB__PL0_REF_CTRL__ACT_FREQMHZ {
            return [expr {[dict get $::viv_props $object CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ] * 0.99999}]
        }
        CONFIG.PCW_ACT_FPGA0_PERIPHERAL_FREQMHZ {
            return [expr {[dict get $::viv_props $object CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ] * 1.0}]
        }
        DIRECTORY {
            return [file join $::viv(dir) $::viv(project).runs $object]
        }
        PROGRESS {
            if {[info exists ::env(STANDIN_IMPL_FAIL)]} {
                return 0%
            }
            return 100%
        }
        STATUS {
            return "write_bitstream Complete!"
        }
        STATS.WNS {
            return 0.123
        }
    }
    standin_fail "get_property: the stand-in does not know property $name of $object"
}

proc update_ip_catalog {args} {
    standin_record update_ip_catalog {*}$args
    standin_need_project update_ip_catalog
    set ::viv(hls_ips) {}
    foreach repo $::viv(repos) {
        foreach xml [glob -nocomplain -directory $repo -- component.xml */component.xml] {
            set fh [open $xml r]
            set text [read $fh]
            close $fh
            set vlnv {}
            foreach tag {vendor library name version} {
                if {![regexp "<spirit:$tag>(\[^<\]+)</spirit:$tag>" $text -> value]} {
                    standin_fail "update_ip_catalog: $xml has no spirit:$tag"
                }
                lappend vlnv $value
            }
            lappend ::viv(hls_ips) [join $vlnv :]
        }
    }
    return ""
}

proc get_ipdefs {args} {
    standin_record get_ipdefs {*}$args
    set o [standin_options $args {-all -quiet} {-filter}]
    set found {}
    foreach pattern [dict get $o ""] {
        foreach vlnv [concat $::viv_catalog $::viv(hls_ips)] {
            if {[string match $pattern $vlnv]} {
                lappend found $vlnv
            }
        }
    }
    return $found
}

proc create_bd_design {args} {
    standin_record create_bd_design {*}$args
    standin_need_project create_bd_design
    if {[llength $args] != 1} {
        standin_fail "create_bd_design: expected one name"
    }
    set ::viv(bd) [lindex $args 0]
    return $::viv(bd)
}

proc create_bd_cell {args} {
    standin_record create_bd_cell {*}$args
    standin_need_bd create_bd_cell
    set o [standin_options $args {} {-type -vlnv}]
    set vlnv [dict get $o -vlnv]
    if {[dict get $o -type] ne "ip"} {
        standin_fail "create_bd_cell: unexpected -type [dict get $o -type]"
    }
    if {$vlnv ni [concat $::viv_catalog $::viv(hls_ips)]} {
        standin_fail "create_bd_cell: IP $vlnv is not in the catalog"
    }
    set name [lindex [dict get $o ""] 0]
    set path /$name
    if {[dict exists $::viv_cells $path]} {
        standin_fail "create_bd_cell: cell $path exists"
    }
    dict set ::viv_cells $path $vlnv
    return $path
}

proc get_bd_cells {args} {
    standin_record get_bd_cells {*}$args
    set o [standin_options $args {-quiet} {}]
    set found {}
    foreach name [dict get $o ""] {
        set path /[string trimleft $name /]
        if {[dict exists $::viv_cells $path]} {
            lappend found $path
        } elseif {![dict exists $o -quiet]} {
            standin_fail "get_bd_cells: no cell $name"
        }
    }
    return $found
}

# Interface pins of a cell: {name kind mode} triples.
proc standin_cell_intf {cell} {
    set vlnv [dict get $::viv_cells $cell]
    lassign [split $vlnv :] vendor library ip
    if {$library eq "hls"} {
        return $::viv_hls_intf
    }
    return [dict get $::viv_ip_intf $ip]
}

proc get_bd_intf_pins {args} {
    standin_record get_bd_intf_pins {*}$args
    return [standin_intf_pins {*}$args]
}

proc standin_intf_pins {args} {
    set o [standin_options $args {-quiet} {-of_objects -filter}]
    set found {}
    if {[dict exists $o -of_objects]} {
        set filter [expr {[dict exists $o -filter] ? [dict get $o -filter] : ""}]
        set want_kind *
        set want_mode *
        if {$filter ne ""} {
            if {![regexp {^VLNV =~ "xilinx\.com:interface:([a-z]+)_rtl:\*" && MODE == "(Master|Slave)"$} \
                    $filter -> want_kind want_mode]} {
                standin_fail "get_bd_intf_pins: the stand-in cannot evaluate -filter {$filter}"
            }
        }
        foreach cell [dict get $o -of_objects] {
            foreach intf [standin_cell_intf $cell] {
                lassign $intf name kind mode
                if {[string match $want_kind $kind] && [string match $want_mode $mode]} {
                    lappend found $cell/$name
                }
            }
        }
        return $found
    }
    foreach path [dict get $o ""] {
        set cell /[string trimleft [file dirname $path] /]
        set name [file tail $path]
        set ok 0
        if {[dict exists $::viv_cells $cell]} {
            foreach intf [standin_cell_intf $cell] {
                if {[lindex $intf 0] eq $name} {
                    set ok 1
                }
            }
        }
        if {$ok} {
            lappend found $cell/$name
        } elseif {![dict exists $o -quiet]} {
            standin_fail "get_bd_intf_pins: no interface pin $path"
        }
    }
    return $found
}

proc get_bd_pins {args} {
    standin_record get_bd_pins {*}$args
    set o [standin_options $args {-quiet} {}]
    set found {}
    foreach path [dict get $o ""] {
        set cell /[string trimleft [file dirname $path] /]
        set name [file tail $path]
        if {![dict exists $::viv_cells $cell]} {
            standin_fail "get_bd_pins: no cell $cell"
        }
        set ip [lindex [split [dict get $::viv_cells $cell] :] 2]
        if {![dict exists $::viv_ip_pins $ip] || $name ni [dict get $::viv_ip_pins $ip]} {
            standin_fail "get_bd_pins: $ip has no pin $name"
        }
        lappend found $cell/$name
    }
    return $found
}

proc standin_need_pins {cmd pins count} {
    if {[llength $pins] != $count} {
        standin_fail "$cmd: expected $count pins, got '$pins'"
    }
}

proc connect_bd_intf_net {args} {
    standin_record connect_bd_intf_net {*}$args
    standin_need_bd connect_bd_intf_net
    standin_need_pins connect_bd_intf_net $args 2
    return ""
}

proc connect_bd_net {args} {
    standin_record connect_bd_net {*}$args
    standin_need_bd connect_bd_net
    standin_need_pins connect_bd_net $args 2
    return ""
}

proc apply_bd_automation {args} {
    standin_record apply_bd_automation {*}$args
    standin_need_bd apply_bd_automation
    set o [standin_options $args {} {-rule -config}]
    set config [dict get $o -config]
    if {[llength $config] % 2} {
        standin_fail "apply_bd_automation: -config must be a key/value list"
    }
    set rule [dict get $o -rule]
    switch -- $rule {
        xilinx.com:bd_rule:zynq_ultra_ps_e - xilinx.com:bd_rule:processing_system7 {
            if {![dict exists $config apply_board_preset]} {
                standin_fail "apply_bd_automation: $rule needs apply_board_preset"
            }
        }
        xilinx.com:bd_rule:axi4 {
            foreach key {Master Slave} {
                if {![dict exists $config $key]} {
                    standin_fail "apply_bd_automation: axi4 rule needs $key"
                }
                standin_intf_pins [dict get $config $key]
            }
        }
        default {
            standin_fail "apply_bd_automation: unknown rule $rule"
        }
    }
    return ""
}

proc assign_bd_address {args} {
    standin_record assign_bd_address {*}$args
    standin_need_bd assign_bd_address
    return ""
}

proc validate_bd_design {args} {
    standin_record validate_bd_design {*}$args
    standin_need_bd validate_bd_design
    return ""
}

proc save_bd_design {args} {
    standin_record save_bd_design {*}$args
    standin_need_bd save_bd_design
    return ""
}

proc standin_bd_dir {} {
    return [file join $::viv(dir) $::viv(project).srcs sources_1 bd $::viv(bd)]
}

proc get_files {args} {
    standin_record get_files {*}$args
    standin_need_bd get_files
    set o [standin_options $args {-quiet -all} {-of_objects}]
    set found {}
    foreach pattern [dict get $o ""] {
        if {[string match $pattern $::viv(bd).bd]} {
            lappend found [file join [standin_bd_dir] $::viv(bd).bd]
        }
    }
    if {$found eq "" && ![dict exists $o -quiet]} {
        standin_fail "get_files: no file matches [dict get $o {}]"
    }
    return $found
}

proc make_wrapper {args} {
    standin_record make_wrapper {*}$args
    standin_need_bd make_wrapper
    set o [standin_options $args {-top} {-files}]
    if {[file tail [dict get $o -files]] ne "$::viv(bd).bd"} {
        standin_fail "make_wrapper: -files is not the block design"
    }
    return [file join $::viv(dir) $::viv(project).gen sources_1 bd $::viv(bd) hdl $::viv(bd)_wrapper.v]
}

proc add_files {args} {
    standin_record add_files {*}$args
    standin_need_project add_files
    standin_options $args {-norecurse} {-fileset}
    return ""
}

proc update_compile_order {args} {
    standin_record update_compile_order {*}$args
    standin_need_project update_compile_order
    standin_options $args {} {-fileset}
    return ""
}

proc launch_runs {args} {
    standin_record launch_runs {*}$args
    standin_need_bd launch_runs
    set o [standin_options $args {} {-to_step -jobs}]
    if {[dict get $o ""] ne "impl_1"} {
        standin_fail "launch_runs: expected impl_1"
    }
    if {![string is integer -strict [dict get $o -jobs]]} {
        standin_fail "launch_runs: -jobs must be an integer"
    }
    if {[info exists ::env(STANDIN_IMPL_FAIL)]} {
        return ""
    }
    if {[dict get $o -to_step] eq "write_bitstream"} {
        set rundir [file join $::viv(dir) $::viv(project).runs impl_1]
        file mkdir $rundir
        set fh [open [file join $rundir $::viv(bd)_wrapper.bit] w]
        puts $fh "stand-in bitstream for $::viv(part)"
        close $fh
        if {![info exists ::env(STANDIN_NO_HWH)]} {
            set hwh [file join $::viv(dir) $::viv(project).gen sources_1 bd $::viv(bd) hw_handoff $::viv(bd).hwh]
            file mkdir [file dirname $hwh]
            set fh [open $hwh w]
            puts $fh "<MODULES/>"
            close $fh
        }
    }
    return ""
}

proc wait_on_run {args} {
    standin_record wait_on_run {*}$args
    return ""
}

proc get_runs {args} {
    standin_record get_runs {*}$args
    return [lindex $args 0]
}

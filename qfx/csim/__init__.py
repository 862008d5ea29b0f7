"""C-simulation support: compile and run HLS C++ (with the ``ap_types`` headers) on the host."""

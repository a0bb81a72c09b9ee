; HEADER_BLOCK_START
; BambuStudio 01.10.01.50
; model printing time: 26s; total estimated time: 6m 9s
; total layer number: 1
; total filament length [mm] : 20.12
; total filament volume [cm^3] : 48.39
; total filament weight [g] : 0.06
; filament_density: 1.26,1.24
; filament_diameter: 1.75,1.75
; max_z_height: 0.20
; HEADER_BLOCK_END

; HEADER_BLOCK_START
; THUMBNAIL_BLOCK_START
;
; thumbnail begin 64x64 240
; iVBORw0KGgoAAAANSUhEUgAAAEAAAABACAIAAAAlC+aJAAAAeklEQVR4nO3PUQkAIBTAwBfFKEYzui
; H8OITBAtzm7PV1wwUNaEEDWtCAFjSgBQ1oQQNa0IAWNKAFDWhBA1rQgBY0oAUNaEEDWtCAFjSgBQ1o
; QQNa0IAWNKAFDWhBA1rQgBY0oAUNaEEDWtCAFjSgBQ1oQQNa0IAWPHYB+/cA00BishIAAAAASUVORK
; 5CYII=
; thumbnail end
;
; THUMBNAIL_BLOCK_END
; HEADER_BLOCK_END

; CONFIG_BLOCK_START
; filament_colour = #FFFFFF;#161616
; filament_type = PLA;PLA
; hot_plate_temp_initial_layer = 65,65
; initial_layer_print_height = 0.2
; layer_height = 0.2
; machine_max_acceleration_x = 20000,20000
; machine_max_acceleration_y = 20000,20000
; machine_max_speed_x = 500,200
; machine_max_speed_y = 500,200
; machine_max_jerk_x = 9,9
; machine_max_jerk_y = 9,9
; nozzle_diameter = 0.4
; nozzle_temperature_initial_layer = 220,220
; printer_model = Bambu Lab A1
; CONFIG_BLOCK_END

; EXECUTABLE_BLOCK_START
M83
; start printing object, unique label id: 15
G1 X10 Y10 Z0.3 F6000
G1 X20 Y10 E0.5 F1800
G1 X20 Y20 E0.5
G1 Z0.5
G1 X10 Y20 E0.5
G1 X10 Y10 E0.5
; EXECUTABLE_BLOCK_END

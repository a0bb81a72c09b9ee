//! The result types: what a print file says about itself ([`Metadata`]), what we measured by
//! reading every move ([`Analysis`]), its pictures ([`Thumbnail`]) and what we could not understand
//! ([`Diagnostic`]). All of them serialize with serde for `hearth inspect --json`.

use serde::Serialize;

/// Container format of a print file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Plain text G-code from any slicer.
    Gcode,
    /// Prusa binary G-code (`.bgcode`, libbgcode specification v1).
    Bgcode,
    /// Bambu Studio / OrcaSlicer plate project (`.gcode.3mf`, a ZIP package).
    Gcode3mf,
}

/// Everything learnt about one print file.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub format: Format,
    /// What the slicer wrote about the print (its own numbers, not checked).
    pub metadata: Metadata,
    /// Our own measurements from every move; `None` for metadata-only inspection.
    pub analysis: Option<Analysis>,
    /// Embedded pictures, in file order.
    pub thumbnails: Vec<Thumbnail>,
    /// What was skipped or looked wrong, with line numbers where there is one.
    pub diagnostics: Vec<Diagnostic>,
    /// Diagnostics beyond the cap in [`crate::Options::max_diagnostics`] are counted, not kept.
    pub diagnostics_dropped: u64,
}

/// The slicer that produced the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Slicer {
    /// Product name as the file spells it, e.g. `PrusaSlicer`, `OrcaSlicer`, `Cura_SteamEngine`.
    pub name: String,
    pub version: Option<String>,
}

/// One filament slot (tool / extruder) as the slicer describes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FilamentInfo {
    pub tool: u32,
    /// Material type, e.g. `PLA`, `PETG`.
    pub material: Option<String>,
    /// Colour as `#RRGGBB` (or whatever the slicer wrote when it is not a hex colour).
    pub colour: Option<String>,
    pub length_mm: Option<f64>,
    pub weight_g: Option<f64>,
    /// Density in g/cm³, used to turn our measured volume into mass.
    pub density_g_cm3: Option<f64>,
    pub diameter_mm: Option<f64>,
}

/// What the slicer wrote about the print. Every field is optional: slicers differ.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Metadata {
    pub slicer: Option<Slicer>,
    pub printer_model: Option<String>,
    pub nozzle_diameter_mm: Option<f64>,
    pub layer_height_mm: Option<f64>,
    pub first_layer_height_mm: Option<f64>,
    pub layer_count: Option<u64>,
    pub object_height_mm: Option<f64>,
    pub nozzle_temperature_c: Option<f64>,
    pub first_layer_nozzle_temperature_c: Option<f64>,
    pub bed_temperature_c: Option<f64>,
    pub first_layer_bed_temperature_c: Option<f64>,
    pub chamber_temperature_c: Option<f64>,
    /// The slicer's own time estimate, in seconds.
    pub estimated_time_s: Option<f64>,
    /// Total filament the slicer reports, all tools.
    pub filament_total_length_mm: Option<f64>,
    pub filament_total_weight_g: Option<f64>,
    pub filaments: Vec<FilamentInfo>,
    /// Object names (labels used for cancelling single objects).
    pub objects: Vec<String>,
}

/// An axis-aligned box in millimetres.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Extents {
    pub min: [f64; 3],
    pub max: [f64; 3],
}

/// Filament consumed by one tool, measured from the moves.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolUsage {
    pub tool: u32,
    /// Filament pushed into the nozzle, counting retract/unretract once (the furthest the
    /// extruder got), as OctoPrint does.
    pub length_mm: f64,
    /// Of `length_mm`, what the slicer's own custom start/end G-code extruded (purge lines), when
    /// the slicer marks it (`;TYPE:Custom`). PrusaSlicer before 2.6 leaves it out of its totals.
    pub custom_gcode_length_mm: f64,
    pub volume_cm3: f64,
    /// `None` when neither the file nor the material type gives a density.
    pub mass_g: Option<f64>,
    /// Filament diameter and density used for the two numbers above, and where they came from.
    pub diameter_mm: f64,
    pub density_g_cm3: Option<f64>,
}

/// The motion limits the time estimate used.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MachineLimits {
    /// Per axis X, Y, Z, E, mm/s².
    pub max_acceleration: [f64; 4],
    /// Per axis X, Y, Z, E, mm/s.
    pub max_feedrate: [f64; 4],
    /// Classic jerk per axis X, Y, Z, E, mm/s.
    pub max_jerk: [f64; 4],
    /// Junction deviation in mm; when set it replaces the X/Y/Z jerk at corners (Marlin 2, Klipper).
    pub junction_deviation_mm: Option<f64>,
    pub print_acceleration: f64,
    pub retract_acceleration: f64,
    pub travel_acceleration: f64,
    pub min_extruding_feedrate: f64,
    pub min_travel_feedrate: f64,
}

/// Where the limits came from, for the reader of the estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitsSource {
    /// Built-in defaults (a generic Marlin printer): the file stated nothing.
    Defaults,
    /// The slicer's configuration block (`; machine_max_acceleration_x = ...`).
    SlicerConfig,
    /// G-code commands in the file (M201, M203, M204, M205, M566, ...), possibly on top of the config.
    Gcode,
}

/// Layer statistics, from the Z heights at which material was extruded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Layers {
    pub count: u64,
    pub first_layer_height_mm: Option<f64>,
    /// The most common layer height after the first layer.
    pub typical_height_mm: Option<f64>,
    pub min_height_mm: Option<f64>,
    pub max_height_mm: Option<f64>,
    /// Highest Z at which material was extruded.
    pub top_z_mm: Option<f64>,
}

/// Our own analysis of every move in the file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    pub lines: u64,
    pub moves: u64,
    pub layers: Layers,
    /// Bounding box of extruding moves (start and end points), as OctoPrint computes it.
    pub extents: Option<Extents>,
    /// Bounding box of all moves.
    pub travel_extents: Option<Extents>,
    pub tools: Vec<ToolUsage>,
    pub filament_length_mm: f64,
    pub filament_volume_cm3: f64,
    pub filament_mass_g: Option<f64>,
    pub tool_changes: u64,
    /// Our estimate (trapezoidal motion model with lookahead), in seconds. Labelled as ours
    /// wherever shown; the slicer's own estimate is [`Metadata::estimated_time_s`].
    pub estimated_time_s: f64,
    pub limits: MachineLimits,
    pub limits_source: LimitsSource,
}

/// Image encoding of a thumbnail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    Png,
    Jpg,
    Qoi,
}

impl ImageFormat {
    /// The usual file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpg => "jpg",
            Self::Qoi => "qoi",
        }
    }
}

/// An embedded picture. Sizes are read from the image itself when it can be parsed, otherwise
/// from what the container declared.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Thumbnail {
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
    /// Encoded size in bytes.
    pub size: usize,
    /// The encoded image. Not serialized: thumbnails are design data and are extracted on purpose.
    #[serde(skip)]
    pub data: Vec<u8>,
}

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Something was skipped; the numbers may be off.
    Warning,
    /// Worth knowing, nothing lost.
    Info,
}

/// Something the parser skipped or doubted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// 1-based line in the (decoded) G-code, when the problem is on a line.
    pub line: Option<u64>,
    pub message: String,
}

/// The facts a member may choose to reveal to the server for scheduling (see DESIGN.md, "What the
/// server may see"): nothing about the design itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SchedulingFacts {
    pub printer_model: Option<String>,
    pub nozzle_diameter_mm: Option<f64>,
    pub material_type: Option<String>,
    pub material_colour: Option<String>,
    pub filament_g: Option<f64>,
    pub estimated_time_s: Option<f64>,
    /// Per filament, in the slicer's order, when the file uses more than one and every one's
    /// weight is known: what the job takes from the spool feeding each.
    pub filaments: Vec<FilamentFact>,
}

/// One filament of a multi-material file, among the [`SchedulingFacts`].
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FilamentFact {
    pub material_type: Option<String>,
    pub material_colour: Option<String>,
    pub filament_g: f64,
}

impl Report {
    /// The scheduling facts, preferring the slicer's statements and falling back on our analysis.
    pub fn scheduling_facts(&self) -> SchedulingFacts {
        let m = &self.metadata;
        let first = m.filaments.first();
        let analysis = self.analysis.as_ref();
        SchedulingFacts {
            printer_model: m.printer_model.clone(),
            nozzle_diameter_mm: m.nozzle_diameter_mm,
            material_type: first.and_then(|f| f.material.clone()),
            material_colour: first.and_then(|f| f.colour.clone()),
            filament_g: m
                .filament_total_weight_g
                .or_else(|| analysis.and_then(|a| a.filament_mass_g)),
            estimated_time_s: m
                .estimated_time_s
                .or_else(|| analysis.map(|a| a.estimated_time_s)),
            filaments: self.filament_facts(),
        }
    }

    /// Each filament's weight as the slicer states it, else as our analysis of its tool found;
    /// empty for a file of one filament, or when a weight is unknown.
    fn filament_facts(&self) -> Vec<FilamentFact> {
        let filaments = &self.metadata.filaments;
        if filaments.len() < 2 {
            return Vec::new();
        }
        let measured = |tool: u32| {
            self.analysis
                .as_ref()?
                .tools
                .iter()
                .find(|t| t.tool == tool)?
                .mass_g
        };
        filaments
            .iter()
            .map(|f| {
                let g = f.weight_g.or_else(|| measured(f.tool))?;
                Some(FilamentFact {
                    material_type: f.material.clone(),
                    material_colour: f.colour.clone(),
                    filament_g: g,
                })
            })
            .collect::<Option<Vec<_>>>()
            .unwrap_or_default()
    }

    /// The largest thumbnail by pixel count.
    pub fn largest_thumbnail(&self) -> Option<&Thumbnail> {
        self.thumbnails
            .iter()
            .max_by_key(|t| u64::from(t.width) * u64::from(t.height))
    }
}

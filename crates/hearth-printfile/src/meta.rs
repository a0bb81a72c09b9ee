//! What slicers write about a print in comments, and the embedded thumbnails.
//!
//! Slicers state the same facts in different shapes: `; key = value` configuration blocks
//! (PrusaSlicer, SuperSlicer, OrcaSlicer, Bambu Studio, Slic3r, KiriMoto), `;KEY:value` headers
//! (Cura, Bambu Studio's header block, ideaMaker), `;   key,value` settings (Simplify3D) and a few
//! free-form sentences. [`MetaCollector`] maps each known key to a canonical [`Key`] and keeps the
//! raw text; [`MetaCollector::finish`] interprets the values once at the end. The shapes and where
//! they come from are listed in `test_data/metadata/README.md`.

use std::collections::BTreeMap;

use base64::Engine as _;

use crate::Diags;
use crate::num::{parse_f64, parse_leading_f64};
use crate::report::{FilamentInfo, ImageFormat, MachineLimits, Metadata, Slicer, Thumbnail};

/// Thumbnails larger than this (base64 text) are skipped: a design preview is never this large.
const MAX_THUMBNAIL_B64: usize = 8 << 20;
/// Decoded thumbnail bytes kept per file; beyond it pictures are skipped (memory stays bounded).
const MAX_THUMBNAILS_TOTAL: usize = 24 << 20;
/// Object labels kept; a file naming more objects is not plausible.
const MAX_OBJECTS: usize = 1024;

/// Canonical metadata keys, whatever the slicer calls them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Key {
    PrinterModel,
    PrinterSettingsId,
    Nozzle,
    LayerHeight,
    FirstLayerHeight,
    /// Simplify3D states the first layer as a percentage of the layer height.
    FirstLayerPercent,
    LayerCount,
    ObjectHeight,
    Temp,
    FirstLayerTemp,
    Bed,
    FirstLayerBed,
    Chamber,
    /// `d h m s` text or plain seconds.
    Time,
    FilamentType,
    FilamentColour,
    ExtruderColour,
    FilamentMm,
    FilamentM,
    FilamentG,
    TotalMm,
    TotalG,
    Density,
    Diameter,
    // Machine limits from the slicer's configuration (first value = normal mode).
    AccelX,
    AccelY,
    AccelZ,
    AccelE,
    AccelExtruding,
    AccelRetracting,
    AccelTravel,
    FeedX,
    FeedY,
    FeedZ,
    FeedE,
    JerkX,
    JerkY,
    JerkZ,
    JerkE,
    JunctionDeviation,
    MinExtrudingRate,
    MinTravelRate,
}

fn canonical(key: &str) -> Option<Key> {
    use Key::*;
    Some(match key {
        "printer_model" | "TARGET_MACHINE.NAME" => PrinterModel,
        "printer_settings_id" => PrinterSettingsId,
        "nozzle_diameter"
        | "Nozzle diameter"
        | "EXTRUDER_TRAIN.0.NOZZLE.DIAMETER"
        | "extruderDiameter"
        | "nozzle_diameter_mm_0" => Nozzle,
        "layer_height" | "Layer height" | "layerHeight" | "sliceHeight" | "z_layer_height_mm" => {
            LayerHeight
        }
        "first_layer_height"
        | "initial_layer_print_height"
        | "firstSliceHeight"
        | "z_layer_height_first_layer_mm" => FirstLayerHeight,
        "firstLayerHeightPercentage" => FirstLayerPercent,
        "total layers count" | "total layer number" | "LAYER_COUNT" | "Layer Count"
        | "layer_count" => LayerCount,
        "max_layer_z" | "max_z_height" | "MAXZ" | "print_height_mm" => ObjectHeight,
        "temperature" | "nozzle_temperature" => Temp,
        "first_layer_temperature"
        | "nozzle_temperature_initial_layer"
        | "EXTRUDER_TRAIN.0.INITIAL_TEMPERATURE"
        | "firstLayerNozzleTemp"
        | "extruder_temp_degree_c_0"
        | "temperatureSetpointTemperatures" => FirstLayerTemp,
        "bed_temperature" | "hot_plate_temp" => Bed,
        "first_layer_bed_temperature"
        | "hot_plate_temp_initial_layer"
        | "bed_temperature_initial_layer_single"
        | "BUILD_PLATE.INITIAL_TEMPERATURE"
        | "firstLayerBedTemp"
        | "bed_temp_degree_c" => FirstLayerBed,
        "chamber_temperature" | "chamber_temperatures" | "chamber_temp_degree_c" => Chamber,
        "estimated printing time (normal mode)"
        | "TIME"
        | "PRINT.TIME"
        | "Print Time"
        | "Build time"
        | "estimated_print_time_s" => Time,
        "filament_type" | "Filament type" | "Filament Type .1" | "printMaterial" => FilamentType,
        "filament_colour" | "filament_color" => FilamentColour,
        "extruder_colour" => ExtruderColour,
        "filament used [mm]" | "Material#1 Used" | "Filament length" | "filament used"
        | "filament_used_mm" => FilamentMm,
        "Filament used" => FilamentM,
        "filament used [g]" | "Filament weight" | "Plastic weight" | "filament_used_g" => FilamentG,
        "total filament length [mm]" => TotalMm,
        "total filament used [g]" | "total filament weight [g]" => TotalG,
        "filament_density" | "filamentDensities" | "Filament Density .1" => Density,
        "filament_diameter" | "filamentDiameters" | "Filament Diameter .1" => Diameter,
        "machine_max_acceleration_x" => AccelX,
        "machine_max_acceleration_y" => AccelY,
        "machine_max_acceleration_z" => AccelZ,
        "machine_max_acceleration_e" => AccelE,
        "machine_max_acceleration_extruding" => AccelExtruding,
        "machine_max_acceleration_retracting" => AccelRetracting,
        "machine_max_acceleration_travel" => AccelTravel,
        "machine_max_feedrate_x" | "machine_max_speed_x" => FeedX,
        "machine_max_feedrate_y" | "machine_max_speed_y" => FeedY,
        "machine_max_feedrate_z" | "machine_max_speed_z" => FeedZ,
        "machine_max_feedrate_e" | "machine_max_speed_e" => FeedE,
        "machine_max_jerk_x" => JerkX,
        "machine_max_jerk_y" => JerkY,
        "machine_max_jerk_z" => JerkZ,
        "machine_max_jerk_e" => JerkE,
        "machine_max_junction_deviation" => JunctionDeviation,
        "machine_min_extruding_rate" => MinExtrudingRate,
        "machine_min_travel_rate" => MinTravelRate,
        _ => return None,
    })
}

#[derive(Debug)]
struct ThumbInProgress {
    format: ImageFormat,
    width: u32,
    height: u32,
    declared_len: usize,
    b64: Vec<u8>,
    line: u64,
    skip: bool,
}

/// Collects metadata from comments (and key/value blocks of binary G-code).
#[derive(Debug, Default)]
pub(crate) struct MetaCollector {
    slicer: Option<Slicer>,
    values: BTreeMap<Key, String>,
    objects: Vec<String>,
    thumb: Option<ThumbInProgress>,
    pub(crate) thumbnails: Vec<Thumbnail>,
    thumbnail_bytes: usize,
    /// The previous comment was ideaMaker's `;LAYER:n`; its `;HEIGHT:` follows.
    idea_layer: Option<u32>,
    idea_heights: [Option<String>; 2],
    /// A machine-limit key was set since the processor last looked.
    pub(crate) limits_dirty: bool,
}

impl MetaCollector {
    /// Handles the text of a comment (after the `;`).
    pub(crate) fn comment(&mut self, raw: &[u8], line: u64, diags: &mut Diags) {
        if self.thumb.is_some() {
            self.thumbnail_line(raw, line, diags);
            return;
        }
        let Ok(text) = std::str::from_utf8(raw) else {
            return;
        };
        let t = text.trim();
        if t.is_empty() {
            return;
        }
        if t.starts_with("thumbnail") {
            self.thumbnail_begin(t, line, diags);
            return;
        }
        if self.slicer.is_none() && self.identify(t) {
            return;
        }
        if let Some(rest) = t.strip_prefix("printing object ") {
            // PrusaSlicer: `; printing object cube id:0 copy 0`
            let name = rest.split(" id:").next().unwrap_or(rest);
            self.object(name);
            return;
        }
        if let Some(name) = t.strip_prefix("MESH:") {
            if name != "NONMESH" {
                self.object(name);
            }
            return;
        }
        if let Some(name) = t.strip_prefix("PRINTING:") {
            self.object(name.trim());
            return;
        }
        self.free_form(t);
    }

    /// The input jumps (metadata-only reading skips the middle of a file): nothing in progress
    /// continues across the gap.
    pub(crate) fn gap(&mut self, diags: &mut Diags) {
        if let Some(th) = self.thumb.take() {
            diags.warn(
                Some(th.line),
                "thumbnail extends past the part of the file read for metadata; skipped".into(),
            );
        }
        self.idea_layer = None;
    }

    /// A `key = value` pair from a configuration block or a binary G-code metadata block.
    pub(crate) fn key_value(&mut self, key: &str, value: &str) {
        if let Some(k) = canonical(key.trim()) {
            self.insert(k, value);
        } else if key.trim() == "objects_info" {
            // PrusaSlicer 2.6+: {"objects":[{"name":"Shape-Box","polygon":...}]}
            let mut rest = value;
            while let Some(i) = rest.find("\"name\":\"") {
                rest = &rest[i + 8..];
                let end = rest.find('"').unwrap_or(rest.len());
                let name = rest[..end].to_owned();
                self.object(&name);
                rest = &rest[end..];
            }
        }
    }

    fn insert(&mut self, k: Key, value: &str) {
        if k >= Key::AccelX {
            self.limits_dirty = true;
        }
        self.values.insert(k, value.trim().to_owned());
    }

    /// An object label from a command (`M486 A"name"`, `EXCLUDE_OBJECT_DEFINE NAME=...`).
    pub(crate) fn object(&mut self, name: &str) {
        let name = name.trim().trim_matches('"');
        if !name.is_empty()
            && self.objects.len() < MAX_OBJECTS
            && !self.objects.iter().any(|o| o == name)
        {
            self.objects.push(name.to_owned());
        }
    }

    /// Sets a value from outside comments (e.g. Bambu's `slice_info.config`), unless the file said it.
    pub(crate) fn set_default(&mut self, key: Key, value: String) {
        self.values.entry(key).or_insert(value);
    }

    pub(crate) fn set_slicer_default(&mut self, slicer: Slicer) {
        if self.slicer.is_none() {
            self.slicer = Some(slicer);
        }
    }

    fn identify(&mut self, t: &str) -> bool {
        let found = if let Some(rest) = strip_prefix_ci(t, "generated by ") {
            // PrusaSlicer family and Slic3r: `generated by PrusaSlicer 2.5.0 on 2026-...`
            // KiriMoto: `Generated by Kiri:Moto 4.1.2`
            let rest = rest.split(" on ").next().unwrap_or(rest);
            let rest = rest
                .strip_prefix("Kiri:Moto (SimplyPrint) ")
                .map_or(rest, |v| v);
            name_version(rest)
        } else if let Some(rest) = t.strip_prefix("Generated with ") {
            // Cura: `Generated with Cura_SteamEngine 5.3.0`
            name_version(rest)
        } else if let Some(rest) = t.strip_prefix("G-Code generated by Simplify3D(R) Version ") {
            Some(Slicer {
                name: "Simplify3D".into(),
                version: Some(rest.trim().to_owned()),
            })
        } else if let Some(rest) = t.strip_prefix("Sliced by ideaMaker ") {
            Some(Slicer {
                name: "ideaMaker".into(),
                version: rest.split(',').next().map(|v| v.trim().to_owned()),
            })
        } else if let Some(rest) = t.strip_prefix("BambuStudio ") {
            Some(Slicer {
                name: "BambuStudio".into(),
                version: Some(rest.trim().to_owned()),
            })
        } else if t.starts_with("KISSlicer") {
            Some(Slicer {
                name: "KISSlicer".into(),
                version: None,
            })
        } else {
            None
        };
        match found {
            Some(s) => {
                self.slicer = Some(s);
                true
            }
            None => false,
        }
    }

    fn free_form(&mut self, t: &str) {
        // Bambu Studio: `model printing time: 26s; total estimated time: 6m 9s`
        if let Some(i) = t
            .starts_with("model printing time")
            .then(|| t.find("total estimated time:"))
            .flatten()
        {
            let v = &t[i + "total estimated time:".len()..];
            self.values.insert(Key::Time, v.trim().to_owned());
            return;
        }
        // KiriMoto footer: `--- filament used: 1234.5 mm ---`, `--- print time: 1234s ---`
        if let Some(rest) = t.strip_prefix("--- ") {
            let rest = rest.trim_end_matches('-').trim();
            if let Some(v) = rest.strip_prefix("filament used:") {
                self.values.insert(Key::FilamentMm, v.trim().to_owned());
            } else if let Some(v) = rest.strip_prefix("print time:") {
                self.values.insert(Key::Time, v.trim().to_owned());
            }
            return;
        }
        // ideaMaker: `;LAYER:0` then `;HEIGHT:0.3`
        if let Some(n) = t.strip_prefix("LAYER:") {
            self.idea_layer = n.trim().parse().ok().filter(|n: &u32| *n < 2);
            return;
        }
        if let Some(h) = t.strip_prefix("HEIGHT:") {
            if let Some(n) = self.idea_layer.take() {
                self.idea_heights[n as usize] = Some(h.trim().to_owned());
            }
            return;
        }
        // ideaMaker: `;Dimension:235.000 235.000 260.000 0.4` (build volume then nozzle)
        if let Some(d) = t.strip_prefix("Dimension:") {
            if let Some(n) = d.split_whitespace().nth(3) {
                self.values.insert(Key::Nozzle, n.to_owned());
            }
            return;
        }
        // `key = value`, `KEY:value` or `key,value`, split at the first separator present
        // (values may contain the others: times, JSON, G-code). memchr keeps this cheap for the
        // per-move comments (`;WIDTH:0.45`) that dominate some files.
        let b = t.as_bytes();
        let Some(i) = memchr::memchr2(b'=', b':', b).or_else(|| memchr::memchr(b',', b)) else {
            return;
        };
        self.key_value(&t[..i], &t[i + 1..]);
    }

    fn thumbnail_begin(&mut self, t: &str, line: u64, diags: &mut Diags) {
        // `thumbnail begin 16x16 172`, `thumbnail_JPG begin ...`, `thumbnail_QOI begin ...`
        let mut words = t.split_whitespace();
        let tag = words.next().unwrap_or("");
        if words.next() != Some("begin") {
            return;
        }
        let format = match tag {
            "thumbnail" | "thumbnail_PNG" => ImageFormat::Png,
            "thumbnail_JPG" => ImageFormat::Jpg,
            "thumbnail_QOI" => ImageFormat::Qoi,
            _ => return,
        };
        let size = words.next().unwrap_or("");
        let (w, h) = size.split_once('x').unwrap_or(("0", "0"));
        let declared_len: usize = words.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        let skip = declared_len > MAX_THUMBNAIL_B64;
        if skip {
            diags.warn(
                Some(line),
                format!("thumbnail of {declared_len} base64 bytes skipped (too large)"),
            );
        }
        self.thumb = Some(ThumbInProgress {
            format,
            width: w.parse().unwrap_or(0),
            height: h.parse().unwrap_or(0),
            declared_len,
            b64: Vec::with_capacity(declared_len.min(MAX_THUMBNAIL_B64)),
            line,
            skip,
        });
    }

    fn thumbnail_line(&mut self, raw: &[u8], line: u64, diags: &mut Diags) {
        let t = raw.trim_ascii();
        if t.starts_with(b"thumbnail") && t.ends_with(b" end") {
            if let Some(th) = self.thumb.take() {
                self.thumbnail_end(th, diags);
            }
            return;
        }
        let Some(th) = self.thumb.as_mut() else {
            return;
        };
        if th.skip {
            return;
        }
        if th.b64.len() + t.len() > MAX_THUMBNAIL_B64 {
            diags.warn(
                Some(line),
                "thumbnail data longer than allowed, skipped".into(),
            );
            th.skip = true;
            th.b64 = Vec::new();
            return;
        }
        th.b64.extend_from_slice(t);
    }

    fn thumbnail_end(&mut self, th: ThumbInProgress, diags: &mut Diags) {
        if th.skip {
            return;
        }
        if th.declared_len != 0 && th.declared_len != th.b64.len() {
            diags.warn(
                Some(th.line),
                format!(
                    "thumbnail declares {} base64 bytes but holds {}",
                    th.declared_len,
                    th.b64.len()
                ),
            );
        }
        match base64::engine::general_purpose::STANDARD.decode(&th.b64) {
            Ok(data) => {
                self.push_thumbnail(th.format, th.width, th.height, data, Some(th.line), diags)
            }
            Err(e) => diags.warn(Some(th.line), format!("thumbnail is not valid base64: {e}")),
        }
    }

    /// Adds a decoded thumbnail, checking its format and reading its real size.
    pub(crate) fn push_thumbnail(
        &mut self,
        declared: ImageFormat,
        width: u32,
        height: u32,
        data: Vec<u8>,
        line: Option<u64>,
        diags: &mut Diags,
    ) {
        if self.thumbnail_bytes + data.len() > MAX_THUMBNAILS_TOTAL {
            diags.warn(
                line,
                format!(
                    "thumbnail of {} bytes skipped: the file's pictures exceed {} MiB",
                    data.len(),
                    MAX_THUMBNAILS_TOTAL >> 20
                ),
            );
            return;
        }
        self.thumbnail_bytes += data.len();
        let (format, width, height) = match crate::image::probe(&data) {
            Some((f, w, h)) => {
                if f != declared {
                    diags.warn(
                        line,
                        format!("thumbnail declared as {declared:?} is really {f:?}"),
                    );
                }
                (f, w, h)
            }
            None => {
                diags.warn(
                    line,
                    format!("thumbnail is not a readable {declared:?} image"),
                );
                (declared, width, height)
            }
        };
        self.thumbnails.push(Thumbnail {
            format,
            width,
            height,
            size: data.len(),
            data,
        });
    }

    /// The configuration's maximum print, retract and travel accelerations (0 when not stated).
    pub(crate) fn accel_caps(&self) -> [f64; 3] {
        [Key::AccelExtruding, Key::AccelRetracting, Key::AccelTravel].map(|k| {
            self.values
                .get(&k)
                .and_then(|v| first_number(v))
                .unwrap_or(0.0)
        })
    }

    /// Machine limits stated by the slicer's configuration, over `base`. `None` when it states none.
    pub(crate) fn config_limits(&self, base: &MachineLimits) -> Option<MachineLimits> {
        use Key::*;
        let first = |k: Key| self.values.get(&k).and_then(|v| first_number(v));
        let mut l = *base;
        let mut any = false;
        let mut set = |target: &mut f64, k: Key| {
            if let Some(v) = first(k) {
                *target = v;
                any = true;
            }
        };
        for (i, (a, f, j)) in [
            (AccelX, FeedX, JerkX),
            (AccelY, FeedY, JerkY),
            (AccelZ, FeedZ, JerkZ),
            (AccelE, FeedE, JerkE),
        ]
        .into_iter()
        .enumerate()
        {
            set(&mut l.max_acceleration[i], a);
            set(&mut l.max_feedrate[i], f);
            set(&mut l.max_jerk[i], j);
        }
        set(&mut l.print_acceleration, AccelExtruding);
        set(&mut l.retract_acceleration, AccelRetracting);
        set(&mut l.travel_acceleration, AccelTravel);
        set(&mut l.min_extruding_feedrate, MinExtrudingRate);
        set(&mut l.min_travel_feedrate, MinTravelRate);
        if let Some(jd) = first(JunctionDeviation).filter(|v| *v > 0.0) {
            l.junction_deviation_mm = Some(jd);
            any = true;
        }
        if l.travel_acceleration <= 0.0 {
            l.travel_acceleration = l.print_acceleration;
        }
        any.then_some(l)
    }

    /// Filament diameter and density per tool (for volume and mass), and material types.
    pub(crate) fn per_tool(&self, key: Key) -> Vec<String> {
        self.values
            .get(&key)
            .map(|v| split_list(v))
            .unwrap_or_default()
    }

    /// Interprets everything collected.
    pub(crate) fn finish(mut self, diags: &mut Diags) -> (Metadata, Vec<Thumbnail>) {
        if let Some(th) = self.thumb.take() {
            diags.warn(
                Some(th.line),
                "thumbnail not terminated before the end of the file".into(),
            );
        }
        use Key::*;
        let v = &self.values;
        let num = |k: Key| v.get(&k).and_then(|s| first_number(s));
        let mut m = Metadata {
            slicer: self.slicer.clone(),
            printer_model: [PrinterModel, PrinterSettingsId]
                .iter()
                .filter_map(|k| v.get(k))
                .map(|s| unquote(s).to_owned())
                .find(|s| !s.is_empty()),
            nozzle_diameter_mm: num(Nozzle),
            layer_height_mm: num(LayerHeight)
                .or_else(|| self.idea_heights[1].as_deref().and_then(parse_f64)),
            first_layer_height_mm: None,
            layer_count: num(LayerCount).filter(|n| *n >= 0.0).map(|n| n as u64),
            object_height_mm: num(ObjectHeight),
            nozzle_temperature_c: num(Temp),
            first_layer_nozzle_temperature_c: num(FirstLayerTemp),
            bed_temperature_c: num(Bed),
            first_layer_bed_temperature_c: num(FirstLayerBed),
            chamber_temperature_c: num(Chamber).filter(|t| *t > 0.0),
            estimated_time_s: v.get(&Time).and_then(|s| parse_duration(s)),
            filament_total_length_mm: None,
            filament_total_weight_g: num(TotalG),
            filaments: Vec::new(),
            objects: std::mem::take(&mut self.objects),
        };
        // First layer height: absolute, a percentage of the layer height, or ideaMaker's layer 0.
        m.first_layer_height_mm = match v.get(&FirstLayerHeight) {
            Some(s) if s.trim_end().ends_with('%') => parse_leading_f64(s)
                .zip(m.layer_height_mm)
                .map(|(p, h)| percent_of(p, h)),
            Some(s) => first_number(s),
            None => self.idea_heights[0]
                .as_deref()
                .and_then(parse_f64)
                .or_else(|| {
                    num(FirstLayerPercent)
                        .zip(m.layer_height_mm)
                        .map(|(p, h)| percent_of(p, h))
                }),
        };

        let types = self.per_tool(FilamentType);
        let mut colours = self.per_tool(FilamentColour);
        if colours.iter().all(|c| c.is_empty()) {
            colours = self.per_tool(ExtruderColour);
        }
        let lengths_mm: Vec<Option<f64>> = match (v.get(&FilamentMm), v.get(&FilamentM)) {
            (Some(s), _) => split_list(s).iter().map(|x| parse_leading_f64(x)).collect(),
            (None, Some(s)) => split_list(s)
                .iter()
                .map(|x| parse_leading_f64(x.trim_end_matches('m')).map(|m| m * 1000.0))
                .collect(),
            _ => Vec::new(),
        };
        let weights: Vec<Option<f64>> = self
            .per_tool(FilamentG)
            .iter()
            .map(|x| parse_leading_f64(x))
            .collect();
        let densities: Vec<Option<f64>> = self
            .per_tool(Density)
            .iter()
            .map(|x| parse_leading_f64(x))
            .collect();
        let diameters: Vec<Option<f64>> = self
            .per_tool(Diameter)
            .iter()
            .map(|x| parse_leading_f64(x))
            .collect();
        let n = [types.len(), colours.len(), lengths_mm.len(), weights.len()]
            .into_iter()
            .max()
            .unwrap_or(0);
        for i in 0..n {
            let nonempty =
                |s: Option<&String>| s.map(|s| unquote(s).to_owned()).filter(|s| !s.is_empty());
            m.filaments.push(FilamentInfo {
                tool: u32::try_from(i).unwrap_or(u32::MAX),
                material: nonempty(types.get(i)),
                colour: nonempty(colours.get(i)),
                length_mm: lengths_mm.get(i).copied().flatten(),
                weight_g: weights.get(i).copied().flatten(),
                density_g_cm3: densities.get(i).copied().flatten(),
                diameter_mm: diameters.get(i).copied().flatten(),
            });
        }
        m.filament_total_length_mm = num(TotalMm).or_else(|| {
            let ls: Vec<f64> = m.filaments.iter().filter_map(|f| f.length_mm).collect();
            (!ls.is_empty()).then(|| ls.iter().sum())
        });
        if m.filament_total_weight_g.is_none() {
            let ws: Vec<f64> = m.filaments.iter().filter_map(|f| f.weight_g).collect();
            if !ws.is_empty() {
                m.filament_total_weight_g = Some(ws.iter().sum());
            }
        }
        (m, self.thumbnails)
    }
}

/// `p` percent of `h`, rounded to the micrometre (150 % of 0.2 reads 0.3, not 0.30000000000000004).
fn percent_of(p: f64, h: f64) -> f64 {
    (p / 100.0 * h * 1e6).round() / 1e6
}

fn strip_prefix_ci<'a>(t: &'a str, prefix: &str) -> Option<&'a str> {
    let head = t.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &t[prefix.len()..])
}

/// `PrusaSlicer 2.5.0` → name and version; the version is the last word starting with a digit.
fn name_version(s: &str) -> Option<Slicer> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    match s.rsplit_once(' ') {
        Some((name, ver)) if ver.starts_with(|c: char| c.is_ascii_digit() || c == 'v') => {
            Some(Slicer {
                name: name.trim().to_owned(),
                version: Some(ver.to_owned()),
            })
        }
        _ => Some(Slicer {
            name: s.to_owned(),
            version: None,
        }),
    }
}

fn unquote(s: &str) -> &str {
    s.trim().trim_matches('"').trim()
}

/// Splits a per-tool list: `PLA;PETG`, `0.4,0.4`, `[1.2, 3.4]`, `"Generic PLA";"Other"`.
pub(crate) fn split_list(s: &str) -> Vec<String> {
    let s = s.trim().trim_start_matches('[').trim_end_matches(']');
    if s.is_empty() {
        return Vec::new();
    }
    s.split([';', ',', '|'])
        .map(|p| unquote(p).to_owned())
        .collect()
}

fn first_number(s: &str) -> Option<f64> {
    split_list(s).first().and_then(|x| parse_leading_f64(x))
}

/// Parses durations as slicers write them: `1d 3h 14m 25s`, `16m 20s`, `1 hours 2 minutes`,
/// `1510` (seconds), `1234s`.
pub(crate) fn parse_duration(s: &str) -> Option<f64> {
    let s = s.trim();
    if let Some(v) = parse_f64(s) {
        return Some(v);
    }
    let mut total = 0.0;
    let mut any = false;
    let mut rest = s;
    while !rest.is_empty() {
        rest = rest.trim_start();
        let Some((v, n)) = crate::num::parse_decimal(rest.as_bytes()) else {
            break;
        };
        rest = rest[n..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let mult = match unit.chars().next().map(|c| c.to_ascii_lowercase()) {
            Some('d') => 86400.0,
            Some('h') => 3600.0,
            Some('m') => 60.0,
            Some('s') | None => 1.0,
            _ => return any.then_some(total),
        };
        total += v * mult;
        any = true;
        rest = &rest[unit_len..];
    }
    any.then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("16m 20s"), Some(980.0));
        assert_eq!(
            parse_duration("1d 3h 14m 25s"),
            Some(86400.0 + 3.0 * 3600.0 + 14.0 * 60.0 + 25.0)
        );
        assert_eq!(parse_duration("1510"), Some(1510.0));
        assert_eq!(parse_duration("1234s"), Some(1234.0));
        assert_eq!(parse_duration("1 hours 2 minutes"), Some(3720.0));
        assert_eq!(parse_duration("soon"), None);
    }

    #[test]
    fn lists() {
        assert_eq!(split_list("PLA;PETG"), ["PLA", "PETG"]);
        assert_eq!(split_list("[1.2, 3.4]"), ["1.2", "3.4"]);
        assert_eq!(split_list("\"\""), [""]);
    }
}

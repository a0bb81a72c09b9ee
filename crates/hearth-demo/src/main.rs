//! `hearth-demo`: the quick start. One process runs `hearthd` (SQLite and blobs in the data directory), an
//! edge agent with six simulated printers, and does what an owner would do on first use, with the real
//! cryptography: an account whose login secret is derived from a generated passphrase, device keys wrapped
//! under it, the organisation's genesis and epoch key, the agent enrolled and approved with a signed link.
//! Then it sends a few sealed, signed jobs so the fleet is busy. Everything it prints lets a newcomer log in
//! with the `hearth` CLI or the API.
//!
//! Restarting it with the same data directory reuses the account, the organisation and the agent.

use anyhow::{Context, anyhow};
use clap::Parser;
use hearth_agent::config::PrinterConfig;
use hearth_agent::crypto::{TrustFile, TrustingOpener, chain_from_links};
use hearth_agent::{AgentConfig, KeyFileIdentity, Setup};
use hearth_client::Client;
use hearth_crypto::{
    DeviceKeys, JobDestination, KdfParams, LinkAction, OrgChain, PrivateMetadata, Sha256Digest,
    TrustedState, WrappedKeyBundle, derive_login_secret, seal_job, seal_job_label,
};
use hearth_drivers::DriverConfig;
use hearth_drivers::simulated::SimulatedConfig;
use hearth_proto::api::{
    ChainLink, CreateTokenRequest, KeyBundle, Printer, SchedulingFacts, SealedEpoch, SetupRequest,
    SubmitJobRequest,
};
use hearth_proto::ids::{JobId, OrgId};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Parser, Debug)]
#[command(
    name = "hearth-demo",
    version,
    about = "Hearth with a live demo fleet: server, agent and six simulated printers"
)]
struct Cli {
    /// Data directory (database, sealed blobs, the agent's state).
    #[arg(long, default_value = "hearth-data")]
    data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// How much faster than real time the simulated printers run.
    #[arg(long, default_value_t = 20.0)]
    time_scale: f64,
}

/// What the demo remembers between runs (in the data directory, mode 0600): it is a demo, so it keeps the
/// owner's passphrase to be able to show it again.
#[derive(Debug, Serialize, Deserialize)]
struct DemoState {
    /// The URL the account was created at: login secrets are derived with it, so it must stay the same.
    server: String,
    login: String,
    passphrase: String,
    org: OrgId,
    genesis: Sha256Digest,
}

const LOGIN: &str = "admin";
const ORG_NAME: &str = "Demo Workshop";

/// The demo fleet: name, model, material, colour, nozzle, pool.
const FLEET: &[(&str, &str, &str, &str, f32, &str)] = &[
    ("mk4-left", "Prusa MK4", "PLA", "galaxy black", 0.4, "pla"),
    ("mk4-right", "Prusa MK4", "PLA", "orange", 0.4, "pla"),
    ("xl", "Prusa XL", "PETG", "blue", 0.4, "petg"),
    ("voron", "Voron 2.4", "ABS", "red", 0.4, "abs"),
    ("x1c", "Bambu Lab X1 Carbon", "PLA", "white", 0.4, "pla"),
    ("ender", "Creality Ender-3 V3", "TPU", "green", 0.6, "tpu"),
];

/// The demo's filament stock: for each printer of [`FLEET`] in order, the material of the spool
/// loaded on it (name, brand, price per kg, empty spool g) and what is left on it, g. The voron's
/// is low. Two spare spools wait on the shelf.
const STOCK: &[(&str, &str, f32, f32, f32)] = &[
    (
        "Prusament PLA Galaxy Black",
        "Prusament",
        24.99,
        193.0,
        812.0,
    ),
    ("Prusament PLA Orange", "Prusament", 24.99, 193.0, 640.0),
    ("Prusament PETG Blue", "Prusament", 27.99, 193.0, 1000.0),
    ("Polymaker ABS Red", "Polymaker", 21.50, 140.0, 85.0),
    ("Bambu PLA Basic White", "Bambu Lab", 19.99, 250.0, 455.0),
    ("NinjaTek TPU Green", "NinjaTek", 59.00, 220.0, 370.0),
];
const SPARES: &[(usize, &str)] = &[(0, "shelf A"), (2, "dry box 1")];

/// Sets up maintenance reminders, unless the organisation has some already: a nozzle every 300
/// hours of printing on every printer, the voron's rods greased every 30 days (last done 35 days
/// ago: due) and the x1c's build plate every 14 days (last done 13 days ago: soon). None holds a
/// printer, so the demo's queue keeps moving.
async fn plan_maintenance(owner: &Client, org: OrgId, printers: &[Printer]) -> anyhow::Result<()> {
    use hearth_proto::maintenance::{MaintenanceKind, MaintenanceSchedule};
    if !owner.maintenance(org).await?.is_empty() {
        return Ok(());
    }
    const DAY: i64 = 86_400_000;
    let now = hearth_proto::time_fmt::now_ms();
    for p in printers {
        let nozzle = MaintenanceSchedule {
            every_print_hours: Some(300),
            ..Default::default()
        };
        owner
            .set_maintenance(org, p.id, MaintenanceKind::Nozzle, &nozzle)
            .await?;
        let (kind, every, ago) = match p.name.as_str() {
            "voron" => (MaintenanceKind::Lubrication, 30, 35),
            "x1c" => (MaintenanceKind::BuildPlate, 14, 13),
            _ => continue,
        };
        let by_date = MaintenanceSchedule {
            every_days: Some(every),
            last_done: Some(hearth_proto::time_fmt::rfc3339(now - ago * DAY)),
            ..Default::default()
        };
        owner.set_maintenance(org, p.id, kind, &by_date).await?;
    }
    Ok(())
}

/// Stocks the library and loads a spool on every printer, unless the organisation has spools
/// already (a restarted demo keeps what it had and what its jobs used).
async fn stock_inventory(owner: &Client, org: OrgId, printers: &[Printer]) -> anyhow::Result<()> {
    use hearth_proto::inventory::{NewMaterial, NewSpool};
    // A spool the x1c's AMS added by its RFID tag may come first.
    if owner
        .spools(org, true)
        .await?
        .iter()
        .any(|s| s.rfid.is_none())
    {
        return Ok(());
    }
    let mut materials = Vec::new();
    for (&(_, _, material, color, _, _), &(name, brand, price, _, _)) in FLEET.iter().zip(STOCK) {
        let m = owner
            .create_material(
                org,
                &NewMaterial {
                    name: name.into(),
                    brand: Some(brand.into()),
                    material: material.into(),
                    color: Some(color.into()),
                    price_per_kg: Some(price),
                    ..Default::default()
                },
            )
            .await
            .with_context(|| format!("adding the material {name}"))?;
        materials.push(m);
    }
    let spool = |i: usize, left: f32, location: Option<&str>| NewSpool {
        material: materials[i].id,
        initial_grams: Some(1000.0),
        remaining_grams: Some(left),
        empty_spool_grams: Some(STOCK[i].3),
        low_grams: None,
        location: location.map(Into::into),
    };
    for (i, &(name, ..)) in FLEET.iter().enumerate() {
        let printer = printers
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| anyhow!("the demo printer {name} is missing"))?;
        let s = owner.create_spool(org, &spool(i, STOCK[i].4, None)).await?;
        if !demo_ams(name).is_empty() {
            // In its AMS's first tray, which the simulated printer feeds every job from.
            owner.load_slot(org, printer.id, "A1", s.id).await?;
            continue;
        }
        let loaded = hearth_proto::api::LoadedRequest {
            spool: Some(s.id),
            nozzle_mm: printer.nozzle_mm,
            ..Default::default()
        };
        owner.set_printer_loaded(org, printer.id, &loaded).await?;
    }
    for &(i, place) in SPARES {
        owner
            .create_spool(org, &spool(i, 1000.0, Some(place)))
            .await?;
    }
    Ok(())
}

/// The Bambu Lab X1C of the demo has an AMS with four spools; the other printers report none. Its
/// spool of the inventory is in the first tray (`stock_inventory`); the second holds a Bambu Lab
/// spool whose RFID tag adds it to the inventory by itself.
/// The actions every demo printer offers, as a farm's agent configuration would have them.
fn demo_actions() -> Vec<hearth_agent::config::ActionConfig> {
    use hearth_agent::config::{ActionConfig, GcodeLines};
    [
        ("home", "Home axes", "G28", false),
        ("motors-off", "Motors off", "M84", false),
        ("fan-off", "Part fan off", "M107", true),
    ]
    .into_iter()
    .map(|(id, label, gcode, while_printing)| ActionConfig {
        id: id.into(),
        label: Some(label.into()),
        gcode: GcodeLines::One(gcode.into()),
        while_printing,
        admins_only: false,
        // Homing with a part left on the bed can crash into it.
        confirm: (id == "home").then(|| "Is the bed clear?".into()),
    })
    .collect()
}

fn demo_ams(printer: &str) -> Vec<hearth_drivers::MaterialSlot> {
    if printer != "x1c" {
        return Vec::new();
    }
    [
        ("A1", "PLA", "FFFFFF", 80, None),
        (
            "A2",
            "PLA",
            "161616",
            45,
            Some("3A1F5C7E9B2D4F6081A3C5E7092B4D6F"),
        ),
        ("A3", "PETG", "1E5AF0", 100, None),
        ("A4", "ASA", "C0C0C0", 12, None),
    ]
    .into_iter()
    .map(
        |(name, material, color, left, tag)| hearth_drivers::MaterialSlot {
            name: name.into(),
            material: material.into(),
            color: Some(color.into()),
            remain_percent: Some(left),
            tag: tag.map(Into::into),
        },
    )
    .collect()
}

/// The demo's cameras: `GET /camera/{printer}` answers a PNG of the printer's bed seen from above,
/// the part growing in its colour with the progress the server reports, as a webcam's snapshot
/// URL answers a photo. Returns the base URL.
async fn serve_cameras(owner: Client, org: OrgId) -> anyhow::Result<String> {
    use axum::extract::Path as UrlPath;
    use axum::http::StatusCode;
    let app = axum::Router::new().route(
        "/camera/{name}",
        axum::routing::get(move |UrlPath(name): UrlPath<String>| {
            let owner = owner.clone();
            async move {
                let printers: Vec<Printer> = owner
                    .raw_get(&format!("/api/v1/orgs/{org}/printers"))
                    .await
                    .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
                let p = printers
                    .into_iter()
                    .find(|p| p.name == name)
                    .ok_or(StatusCode::NOT_FOUND)?;
                let png = camera_picture(&p).ok_or(StatusCode::INTERNAL_SERVER_ERROR)?;
                Ok::<_, StatusCode>(([("content-type", "image/png")], png))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot listen for the demo cameras")?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "the demo cameras stopped");
        }
    });
    Ok(url)
}

/// What a camera above `p`'s bed would see: the bed with its grid, the part (a square growing
/// with the progress) in the loaded colour, a progress bar.
fn camera_picture(p: &Printer) -> Option<Vec<u8>> {
    const W: usize = 320;
    const H: usize = 240;
    let colour = match p.color.as_deref().unwrap_or("") {
        "orange" => [255, 128, 0],
        "blue" => [30, 90, 220],
        "red" => [210, 40, 40],
        "white" => [235, 235, 235],
        "green" => [40, 170, 70],
        c if c.contains("black") => [45, 45, 55],
        _ => [150, 150, 150],
    };
    let progress = f64::from(p.telemetry.progress.unwrap_or(0.0)).clamp(0.0, 1.0);
    let side = (20.0 + 110.0 * progress) as usize;
    let (cx, cy) = (W / 2, 120);
    let mut px = vec![0u8; W * H * 4];
    for y in 0..H {
        for x in 0..W {
            let on_bed = (40..280).contains(&x) && (20..220).contains(&y);
            let grid = on_bed && (x % 20 == 0 || y % 20 == 0);
            let part =
                x + side / 2 >= cx && x < cx + side / 2 && y + side / 2 >= cy && y < cy + side / 2;
            let bar =
                (228..234).contains(&y) && (40..40 + (240.0 * progress) as usize).contains(&x);
            let rgb = if part && progress > 0.0 {
                colour
            } else if bar {
                [60, 130, 250]
            } else if grid {
                [120, 120, 115]
            } else if on_bed {
                [90, 90, 86]
            } else {
                [25, 25, 24]
            };
            let i = (y * W + x) * 4;
            px[i..i + 3].copy_from_slice(&rgb);
            px[i + 3] = 255;
        }
    }
    hearth_printfile::encode_png(W as u32, H as u32, &px)
}

fn now() -> i64 {
    hearth_proto::time_fmt::now_ms() / 1000
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// A small synthetic G-code part: a few layers of a square, enough for the simulator to time a print.
/// It states its filament as slicers do, so that its analysis gives the grams a job takes from
/// its printer's spool.
fn demo_gcode(layers: u32, material: &str) -> Vec<u8> {
    let mut g = format!(
        "; generated by hearth-demo\n; filament_diameter = 1.75\n; filament_density = {}\n\
         G28\nG90\nM82\nM104 S215\nM140 S60\nG92 E0\n",
        hearth_proto::inventory::default_density(material)
    );
    let mut e = 0.0;
    for l in 1..=layers {
        g.push_str(&format!(
            ";LAYER_CHANGE\n;Z:{:.2}\nG1 Z{:.2} F600\n",
            l as f32 * 0.2,
            l as f32 * 0.2
        ));
        for (x, y) in [
            (120.0, 100.0),
            (140.0, 100.0),
            (140.0, 120.0),
            (120.0, 120.0),
            (120.0, 100.0),
        ] {
            e += 0.8;
            g.push_str(&format!("G1 X{x} Y{y} E{e:.3} F600\n"));
        }
    }
    g.push_str("M104 S0\nM140 S0\n");
    g.into_bytes()
}

/// A part to try `hearth print` with, as a slicer would state it: for the demo's MK4s, in PLA with
/// a 0.4 mm nozzle, so `--pool pla` places it on one of them.
fn demo_part() -> Vec<u8> {
    let mut g = b"; sliced for the Hearth demo fleet\n; printer_model = MK4\n\
                  ; nozzle_diameter = 0.4\n; filament_type = PLA\n; layer_height = 0.2\n"
        .to_vec();
    g.extend(demo_gcode(30, "PLA"));
    g
}

/// The address the demo is reached at: `http://localhost:PORT` when it listens on the loopback
/// address only (the default), so that passkeys work (authenticators refuse an IP address as the
/// server's name, and localhost is a secure context); the listening address otherwise.
fn demo_url(addr: std::net::SocketAddr) -> String {
    if addr.ip().is_loopback() {
        format!("http://localhost:{}", addr.port())
    } else {
        format!("http://{addr}")
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    std::fs::create_dir_all(&cli.data_dir)?;
    let listener = tokio::net::TcpListener::bind(&cli.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cli.listen))?;
    let url = demo_url(listener.local_addr()?);
    let state_path = cli.data_dir.join("demo.json");
    // The server announces the address the demo account was created at (its login secret is
    // salted with it), so the dashboard fills it in even when opened as http://localhost:8080.
    let created_at = std::fs::read(&state_path)
        .ok()
        .and_then(|b| serde_json::from_slice::<DemoState>(&b).ok())
        .map_or_else(|| url.clone(), |s| s.server);
    let mut settings = hearth_server::config::Settings {
        data_dir: cli.data_dir.clone(),
        listen: cli.listen.clone(),
        public_url: Some(created_at),
        ..Default::default()
    };
    // The demo is one person's server on their own machine: let its notifications reach an ntfy
    // or chat server on the same network (a real deployment decides this in [notifications]).
    settings.notifications.allow_private_addresses = true;
    let server = hearth_server::start(settings)
        .await
        .context("starting hearthd")?;
    let setup_token = server.setup_token.clone();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let server_task = tokio::spawn(server.run(listener, stopped(stop_rx.clone())));

    let kdf = KdfParams::default();
    let agent_dir = cli.data_dir.join("agent");
    let state = match setup_token {
        Some(token) => first_run(&url, &token, &kdf, &agent_dir).await?,
        None => serde_json::from_slice::<DemoState>(
            &std::fs::read(&state_path)
                .context("this data directory was not created by hearth-demo")?,
        )?,
    };
    write_private(&state_path, &serde_json::to_vec_pretty(&state)?)?;

    // The owner's session, device keys and the verified chain, as the CLI would have them.
    if state.server != url {
        eprintln!(
            "note: the demo account was created at {}; `hearth login` must use that URL (login secrets are bound to it)",
            state.server
        );
    }
    let secret = derive_login_secret(&state.passphrase, &state.server, &state.login, &kdf)
        .map_err(|e| anyhow!("{e}"))?
        .expose_hex();
    let mut owner = Client::new(&url)?;
    owner
        .login(&state.login, &secret)
        .await
        .context("demo login")?;
    let bundle: KeyBundle = owner.raw_get("/api/v1/me/key-bundle").await?;
    let wrapped: WrappedKeyBundle = serde_json::from_value(bundle.bundle)?;
    let device = wrapped
        .unwrap_keys(&state.passphrase, &kdf)
        .map_err(|e| anyhow!("{e}"))?;

    // The agent and its printers, each with a simulated camera.
    let cameras = serve_cameras(owner.clone(), state.org).await?;
    let identity = KeyFileIdentity::load(&agent_dir).context("the demo agent's key")?;
    let opener = TrustingOpener::load(&agent_dir, identity.keys())?;
    let printers = FLEET
        .iter()
        .map(
            |&(name, model, material, color, nozzle, pool)| PrinterConfig {
                name: name.into(),
                pools: vec![pool.into()],
                material: Some(material.into()),
                color: Some(color.into()),
                nozzle_mm: Some(nozzle),
                heat: Default::default(),
                tune: Default::default(),
                actions: demo_actions(),
                builtin_actions: true,
                camera: Some(hearth_agent::config::CameraConfig {
                    snapshot_url: Some(format!("{cameras}/camera/{name}")),
                    interval_seconds: 10.0,
                    idle_interval_seconds: 60.0,
                    timelapse: true,
                    timelapse_trigger: Default::default(),
                }),
                driver: DriverConfig::Simulated(SimulatedConfig {
                    model: model.into(),
                    time_scale: cli.time_scale,
                    slots: demo_ams(name),
                    // The Bambu Lab printer's chamber light, as its own action.
                    light: model.starts_with("Bambu Lab"),
                    ..Default::default()
                }),
            },
        )
        .collect();
    let config = AgentConfig {
        server: url.clone(),
        state_dir: agent_dir.clone(),
        ca_cert: None,
        timing: Default::default(),
        printers,
    };
    let agent_pub = identity.keys().public();
    let setup = Setup::from_config(config, Arc::new(identity), Arc::new(opener))?;
    let agent_task = tokio::spawn(hearth_agent::run(setup, stopped(stop_rx.clone())));

    // Keep the fleet busy: one sealed, signed job for four of the printers.
    let links: Vec<ChainLink> = owner
        .raw_get(&format!("/api/v1/orgs/{}/chain", state.org))
        .await?;
    let trusted = chain_from_links(links)
        .map_err(|e| anyhow!(e))?
        .verify(&state.genesis)
        .context("the demo organisation's chain does not verify")?;
    let printers_seen = wait_for_printers(&owner, state.org).await?;
    stock_inventory(&owner, state.org, &printers_seen)
        .await
        .context("stocking the demo's spools")?;
    plan_maintenance(&owner, state.org, &printers_seen)
        .await
        .context("setting up the demo's maintenance reminders")?;
    let mut sent = 0;
    for (i, p) in printers_seen
        .iter()
        .filter(|p| p.name != "xl" && p.name != "ender")
        .enumerate()
    {
        send_job(
            &owner,
            state.org,
            &trusted,
            &device,
            &agent_pub,
            p,
            (PARTS[i % PARTS.len()], 150 + 60 * i as u32),
            &cli.data_dir,
        )
        .await?;
        sent += 1;
    }
    // And two more for the first MK4, which wait in the fleet queue until that printer is free.
    if let Some(p) = printers_seen.iter().find(|p| p.name == "mk4-left") {
        for job in [("cable-clip.gcode", 120), ("sensor-mount.gcode", 90)] {
            send_job(
                &owner,
                state.org,
                &trusted,
                &device,
                &agent_pub,
                p,
                job,
                &cli.data_dir,
            )
            .await?;
            sent += 1;
        }
    }

    let part = cli.data_dir.join("demo-part.gcode");
    std::fs::write(&part, demo_part())
        .with_context(|| format!("cannot write {}", part.display()))?;
    let api_token = owner
        .create_token(&CreateTokenRequest {
            name: "hearth-demo".into(),
            org: Some(state.org),
            max_role: None,
            expires_in_days: Some(7),
        })
        .await?
        .token;
    println!(
        "\nHearth demo is running at {url}\n\
         - organisation \"{ORG_NAME}\" with an agent driving {} simulated printers ({}x real time), {sent} jobs sent\n\
         \x20 (two wait in the fleet queue behind mk4-left's print: `hearth queue`),\n\
         \x20 a spool on every printer (`hearth spools`, the dashboard's Spools tab) and a simulated camera\n\
         \x20 (`hearth camera mk4-left`: its frames are sealed by the agent, opened by the CLI) that keeps\n\
         \x20 a sealed timelapse of every job (`hearth timelapse`); maintenance reminders, the voron's\n\
         \x20 lubrication due (`hearth maintenance`, the Maintenance tab); fleet statistics (`hearth stats`)\n\
         - owner login: {}    passphrase: {}\n\
         \nLook at the fleet:\n\
         \x20   open {url} in a browser   the dashboard: log in as {} with the passphrase above\n\
         \x20   hearth login {url} --login {}          (enter the passphrase above)\n\
         \x20   hearth ui                     your own dashboard: camera frames, timelapses, file names\n\
         \x20   hearth status                 live view;  hearth printers, hearth jobs\n\
         \x20   curl -H 'Authorization: Bearer {api_token}' {url}/api/v1/orgs/{}/printers\n\
         \nThe server sees only sealed blobs: try `hearth print {} --pool pla`\n\
         (a part sliced for the MK4s; `hearth inspect` shows what it holds) and `hearth upload FILE`.\n\
         Data lives in {}. Stop with Ctrl-C.\n",
        FLEET.len(),
        cli.time_scale,
        state.login,
        state.passphrase,
        state.login,
        state.login,
        state.org,
        part.display(),
        cli.data_dir.display(),
    );

    tokio::signal::ctrl_c().await?;
    eprintln!("stopping...");
    let _ = stop_tx.send(true);
    agent_task.await?.map_err(|e| anyhow!("agent: {e}"))?;
    server_task.await?.map_err(|e| anyhow!("server: {e}"))?;
    Ok(())
}

/// First start: the owner account (login secret derived from a fresh passphrase), device keys wrapped
/// under it, the organisation's genesis and first epoch, and the agent enrolled and approved.
async fn first_run(
    url: &str,
    token: &str,
    kdf: &KdfParams,
    agent_dir: &Path,
) -> anyhow::Result<DemoState> {
    eprintln!(
        "first start: setting up the demo organisation (deriving keys takes a few seconds)..."
    );
    let passphrase = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 12]>())
    };
    let secret = derive_login_secret(&passphrase, url, LOGIN, kdf)
        .map_err(|e| anyhow!("{e}"))?
        .expose_hex();
    let anon = Client::new(url)?;
    let out = anon
        .setup(&SetupRequest {
            token: token.into(),
            login: LOGIN.into(),
            secret: secret.to_string(),
            org_name: ORG_NAME.into(),
        })
        .await
        .context("creating the demo owner")?;
    let org = out.org.id;
    let mut owner = Client::new(url)?;
    owner.login(LOGIN, &secret).await?;

    let device = DeviceKeys::generate();
    let wrapped = device
        .to_wrapped(&passphrase, kdf)
        .map_err(|e| anyhow!("{e}"))?;
    owner
        .raw_put(
            "/api/v1/me/key-bundle",
            &serde_json::json!({ "bundle": wrapped }),
        )
        .await?;
    owner
        .raw_put(
            "/api/v1/me/device",
            &serde_json::json!({ "public": device.public() }),
        )
        .await?;

    let (mut chain, epoch) = OrgChain::create(&device, LOGIN, ORG_NAME, now());
    let genesis = chain.genesis_hash();
    let trusted = chain.verify(&genesis)?;
    let _: ChainLink = owner
        .raw_post(
            &format!("/api/v1/orgs/{org}/chain"),
            &serde_json::to_value(ChainLink {
                seq: 0,
                link: serde_json::to_value(&chain.genesis)?,
            })?,
        )
        .await?;
    let sealed = epoch.seal_for_members(&trusted)?;
    let _: SealedEpoch = owner
        .raw_post(
            &format!("/api/v1/orgs/{org}/epochs"),
            &serde_json::to_value(SealedEpoch {
                epoch: 1,
                sealed: serde_json::to_value(&sealed)?,
            })?,
        )
        .await?;

    // The agent makes its keys on "its machine" (its state directory), enrolls, and the owner approves it
    // after comparing fingerprints (here the demo compares them itself).
    let enroll_token: serde_json::Value = owner
        .raw_post(
            &format!("/api/v1/orgs/{org}/agents/enrollment-tokens"),
            &serde_json::Value::Null,
        )
        .await?;
    std::fs::create_dir_all(agent_dir)?;
    let enrolled = hearth_agent::enroll::enroll(
        &reqwest::Client::new(),
        url,
        enroll_token["token"].as_str().unwrap_or_default(),
        "demo-agent",
        agent_dir,
    )
    .await?;
    TrustFile {
        genesis: Some(genesis),
        checkpoint: None,
    }
    .save(agent_dir)?;
    let agent_keys = KeyFileIdentity::load(agent_dir)?.keys();
    let agent_pub = agent_keys.public();
    if agent_pub.fingerprint().to_string() != enrolled.fingerprint {
        return Err(anyhow!(
            "the agent's fingerprint does not match what it enrolled with"
        ));
    }
    let add = LinkAction::AddAgent {
        name: "demo-agent".into(),
        pool: None,
        agent: agent_pub,
    };
    let link = chain.append(&device, add, now())?.clone();
    let _: serde_json::Value = owner
        .raw_post(
            &format!(
                "/api/v1/orgs/{org}/agents/{}/approve",
                enrolled.response.agent_id
            ),
            &serde_json::json!({ "seq": chain.links.len(), "link": link }),
        )
        .await
        .context("approving the demo agent")?;
    Ok(DemoState {
        server: url.to_owned(),
        login: LOGIN.into(),
        passphrase,
        org,
        genesis,
    })
}

/// Wait (bounded) until the agent has announced every printer of the demo fleet.
async fn wait_for_printers(owner: &Client, org: OrgId) -> anyhow::Result<Vec<Printer>> {
    let mut events = owner
        .raw_get_response(&format!("/api/v1/orgs/{org}/events"))
        .await?;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let printers: Vec<Printer> = owner
            .raw_get(&format!("/api/v1/orgs/{org}/printers"))
            .await?;
        let connected = printers
            .iter()
            .filter(|p| p.telemetry.state != hearth_proto::agent::PrinterState::Offline)
            .count();
        if connected >= FLEET.len() {
            return Ok(printers);
        }
        // Every change arrives on the event stream: wait for the next one instead of polling blindly.
        match tokio::time::timeout_at(deadline, events.chunk()).await {
            Ok(Ok(Some(_))) => {}
            Ok(Ok(None)) | Ok(Err(_)) => {
                events = owner
                    .raw_get_response(&format!("/api/v1/orgs/{org}/events"))
                    .await?;
            }
            Err(_) => {
                return Err(anyhow!(
                    "the demo agent's printers did not come online within 30 s"
                ));
            }
        }
    }
}

/// What the demo's jobs print, as their sealed labels name them.
const PARTS: [&str; 5] = [
    "fan-duct.gcode",
    "hinge-bracket.gcode",
    "spool-holder.gcode",
    "gear-housing.gcode",
    "enclosure-latch.gcode",
];

/// Seal a job for one printer exactly as `hearth print` does (with its sealed label `name`),
/// upload it and queue it.
#[allow(clippy::too_many_arguments)]
async fn send_job(
    owner: &Client,
    org: OrgId,
    trusted: &TrustedState,
    device: &DeviceKeys,
    agent: &hearth_crypto::DevicePublic,
    printer: &Printer,
    (name, layers): (&str, u32),
    scratch: &Path,
) -> anyhow::Result<()> {
    let job_id = JobId::new();
    let gcode = demo_gcode(layers, printer.material.as_deref().unwrap_or("PLA"));
    // The facts `hearth print` reveals of a file, from the same analysis: the demo's queue shows
    // each job's material, weight and estimated time.
    let facts = hearth_printfile::analyze(std::io::Cursor::new(&gcode), &Default::default())
        .map(|r| r.scheduling_facts())
        .ok();
    let sealed_path = scratch.join(format!("demo-job-{job_id}.age"));
    let manifest = {
        let out = std::fs::File::create(&sealed_path)?;
        let to = JobDestination::Printer {
            agent,
            printer: &printer.name,
        };
        seal_job(
            trusted,
            device,
            &job_id.to_string(),
            to,
            &gcode[..],
            std::io::BufWriter::new(out),
            now() - 60,
            now() + 86_400,
        )?
    };
    let blob = owner.upload_file(org, &sealed_path).await;
    let _ = std::fs::remove_file(&sealed_path);
    let blob = blob?;
    // Its sealed label, as `hearth print` attaches one: `hearth ui` names what each printer prints.
    let label = seal_job_label(
        trusted,
        device,
        &job_id.to_string(),
        &manifest.manifest.blob_sha256,
        manifest.manifest.blob_size,
        &PrivateMetadata {
            name: name.to_owned(),
            ..PrivateMetadata::default()
        },
        now(),
    )?;
    let label_path = scratch.join(format!("demo-label-{job_id}.age"));
    std::fs::write(&label_path, &label.metadata.sealed)?;
    let label_blob = owner.upload_file(org, &label_path).await;
    let _ = std::fs::remove_file(&label_path);
    let _: serde_json::Value = owner
        .raw_post(
            &format!("/api/v1/orgs/{org}/jobs"),
            &serde_json::to_value(SubmitJobRequest {
                label: Some(hearth_proto::api::JobLabel {
                    meta_sha256: label_blob?,
                    manifest: serde_json::to_value(&label.manifest)?,
                }),
                priority: 0,
                job_id,
                printer: Some(printer.id),
                pool: None,
                blob_sha256: blob,
                manifest: serde_json::to_value(&manifest)?,
                facts: SchedulingFacts {
                    printer_model: Some(printer.model.clone()),
                    material: printer.material.clone(),
                    nozzle_mm: printer.nozzle_mm,
                    filament_grams: facts.as_ref().and_then(|f| f.filament_g).map(|g| g as f32),
                    estimated_seconds: facts
                        .as_ref()
                        .and_then(|f| f.estimated_time_s)
                        .map(|s| s.max(0.0).round() as u64),
                    ..Default::default()
                },
            })?,
        )
        .await?;
    Ok(())
}

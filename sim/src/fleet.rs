//! A simulated fleet: N devices drawn from the archetypes, spread over sites and
//! groups, each with an identity and an inventory that look like what the real agent
//! sends (SMBIOS-style UUID device ids, EDID-like monitors, BIOS dates). Pure and
//! deterministic: device `i` of seed `s` is the same device in every run, whatever N.

use veille_proto::v1::{Battery, Disk, Inventory, Monitor};

use crate::archetype::{Archetype, Habits};
use crate::rng::{Rng, mix, uuid_like};

/// Sites used when none are given: a mid-sized local authority.
pub const DEFAULT_SITES: [&str; 6] = [
    "hotel-de-ville",
    "mediatheque",
    "services-techniques",
    "ecole-jaures",
    "ecole-moulin",
    "centre-social",
];

/// Groups (agent tags) a device may carry, one per device.
pub const GROUPS: [&str; 6] = ["finance", "hr", "it", "education", "culture", "technical"];

/// What a fleet is made of.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetSpec {
    pub seed: u64,
    pub devices: usize,
    pub sites: Vec<String>,
}

impl FleetSpec {
    pub fn new(seed: u64, devices: usize) -> Self {
        Self {
            seed,
            devices,
            sites: DEFAULT_SITES.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    pub fn device(&self, index: usize) -> SimDevice {
        SimDevice::new(self, index)
    }

    pub fn iter(&self) -> impl Iterator<Item = SimDevice> + '_ {
        (0..self.devices).map(|i| self.device(i))
    }
}

/// One simulated device.
#[derive(Debug, Clone, PartialEq)]
pub struct SimDevice {
    pub seed: u64,
    pub index: usize,
    pub device_id: String,
    pub archetype: Archetype,
    pub habits: Habits,
    pub site: String,
    pub group: String,
    /// Year the machine was bought (drives BIOS date and monitor age).
    pub year: u32,
}

impl SimDevice {
    fn new(spec: &FleetSpec, index: usize) -> Self {
        let mut rng = Rng::new(&[spec.seed, index as u64, 0xF1EE7]);
        let archetype = if index < spec.devices.min(Archetype::ALL.len()) {
            // Small fleets still show every archetype.
            Archetype::ALL[index]
        } else {
            Archetype::draw(&mut rng)
        };
        let habits = Habits::draw(archetype, &mut rng);
        let site = if spec.sites.is_empty() {
            "main".to_owned()
        } else {
            spec.sites[index % spec.sites.len()].clone()
        };
        let group = if archetype == Archetype::Server {
            "it".to_owned()
        } else {
            (*rng.pick(&GROUPS)).to_owned()
        };
        let year = rng.range(2014, 2026);
        Self {
            seed: spec.seed,
            index,
            device_id: uuid_like(&[spec.seed, index as u64, 0xD1D]),
            archetype,
            habits,
            site,
            group,
            year,
        }
    }

    /// A seed for draws about this device and `what`.
    pub fn key(&self, what: &[u64]) -> u64 {
        let mut words = vec![self.seed, self.index as u64];
        words.extend_from_slice(what);
        mix(&words)
    }

    pub fn hostname(&self) -> String {
        let prefix = match self.archetype {
            Archetype::Desktop => "PC",
            Archetype::Laptop => "PORT",
            Archetype::ThinClient => "TC",
            Archetype::Kiosk => "BORNE",
            Archetype::Server => "SRV",
        };
        let site: String = self
            .site
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(3)
            .collect();
        format!("{}-{prefix}{:05}", site.to_uppercase(), self.index)
    }

    /// The inventory the device's agent sends at start.
    pub fn inventory(&self, agent_version: &str) -> Inventory {
        let mut rng = Rng::new(&[self.key(&[0x1417])]);
        let (manufacturer, model, cpu, cores, ram_gib, os) = match self.archetype {
            Archetype::Desktop => (
                "Dell Inc.",
                *rng.pick(&["OptiPlex 7010", "OptiPlex 5090", "OptiPlex 3080"]),
                "Intel(R) Core(TM) i5-10500 CPU @ 3.10GHz",
                6,
                *rng.pick(&[8u64, 16]),
                ("Windows 11 Pro", "23H2"),
            ),
            Archetype::Laptop => (
                "LENOVO",
                *rng.pick(&["ThinkPad T14 Gen 2", "ThinkPad L15", "ThinkPad E14"]),
                "11th Gen Intel(R) Core(TM) i5-1145G7 @ 2.60GHz",
                4,
                16,
                ("Windows 11 Pro", "23H2"),
            ),
            Archetype::ThinClient => (
                "HP",
                "t640 Thin Client",
                "AMD Ryzen Embedded R1505G",
                2,
                8,
                ("Debian GNU/Linux", "12"),
            ),
            Archetype::Kiosk => (
                "HP",
                "EliteOne 800 G6 All-in-One",
                "Intel(R) Core(TM) i5-10500 CPU @ 3.10GHz",
                6,
                8,
                ("Debian GNU/Linux", "12"),
            ),
            Archetype::Server => (
                "Dell Inc.",
                *rng.pick(&["PowerEdge R640", "PowerEdge R650", "PowerEdge T440"]),
                "Intel(R) Xeon(R) Silver 4214R CPU @ 2.40GHz",
                24,
                *rng.pick(&[64u64, 128, 256]),
                ("Debian GNU/Linux", "12"),
            ),
        };
        let month = rng.range(1, 13);
        let day = rng.range(1, 29);
        let monitors = match self.archetype {
            Archetype::Desktop | Archetype::ThinClient => rng.range(1, 3),
            Archetype::Laptop => rng.range(0, 2),
            Archetype::Kiosk | Archetype::Server => 0,
        };
        let monitors = (0..monitors)
            .map(|m| {
                let (pnp, code, name, w, h) = *rng.pick(&[
                    ("DEL", 0xa0c4u32, "DELL P2419H", 53u32, 30u32),
                    ("DEL", 0xd0a3, "DELL P2422H", 53, 30),
                    ("HPN", 0x3474, "HP E24 G4", 53, 30),
                    ("SAM", 0x0f4c, "S24R650", 53, 30),
                    ("LEN", 0x61b8, "LEN T24i-20", 53, 30),
                ]);
                Monitor {
                    manufacturer: pnp.into(),
                    product_code: code,
                    serial: format!("{}{:08X}", pnp, self.key(&[0x5e71, u64::from(m)]) as u32),
                    year_of_manufacture: self.year.saturating_sub(rng.range(0, 3)),
                    week_of_manufacture: rng.range(1, 53),
                    width_cm: w,
                    height_cm: h,
                    name: name.into(),
                }
            })
            .collect();
        let laptop = self.archetype == Archetype::Laptop;
        Inventory {
            hostname: self.hostname(),
            os_name: os.0.into(),
            os_version: os.1.into(),
            kernel: if os.0.starts_with("Windows") {
                "10.0.22631".into()
            } else {
                "6.1.0-27-amd64".into()
            },
            manufacturer: manufacturer.into(),
            model: model.into(),
            serial: format!("{:07X}", self.key(&[0x5e7]) as u32 & 0xfff_ffff),
            chassis: self.archetype.chassis() as i32,
            chassis_type: u32::from(self.archetype.chassis_code()),
            cpu_model: cpu.into(),
            cpu_cores: cores,
            ram_bytes: ram_gib << 30,
            bios_release_date: format!("{}-{month:02}-{day:02}", self.year),
            monitors,
            disks: vec![Disk {
                name: if os.0.starts_with("Windows") {
                    "C:".into()
                } else {
                    "nvme0n1".into()
                },
                size_bytes: if self.archetype == Archetype::Server {
                    1_920_383_410_176
                } else {
                    512_110_190_592
                },
                rotational: false,
            }],
            battery: laptop.then(|| Battery {
                design_capacity_mwh: 52_500,
                full_capacity_mwh: 52_500 - u64::from(rng.range(0, 15_000)),
            }),
            agent_version: agent_version.into(),
            site: self.site.clone(),
            tags: vec![self.group.clone()],
            // Simulated devices have no network to wake them on.
            interfaces: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_are_deterministic_and_independent_of_fleet_size() {
        let a = FleetSpec::new(7, 100);
        let b = FleetSpec::new(7, 1000);
        for i in 10..100 {
            assert_eq!(a.device(i), b.device(i));
        }
        assert_ne!(
            a.device(3).device_id,
            FleetSpec::new(8, 100).device(3).device_id
        );
        let ids: std::collections::HashSet<_> = b.iter().map(|d| d.device_id).collect();
        assert_eq!(ids.len(), 1000);
    }

    #[test]
    fn the_mix_has_every_archetype_and_inventories_pass_validation() {
        let fleet = FleetSpec::new(1, 500);
        for a in Archetype::ALL {
            assert!(fleet.iter().any(|d| d.archetype == a), "{a:?}");
        }
        let desktops = fleet
            .iter()
            .filter(|d| d.archetype == Archetype::Desktop)
            .count();
        assert!((200..360).contains(&desktops), "{desktops}");
        for d in fleet.iter().take(50) {
            let inv = d.inventory("0.1.0");
            assert_eq!(inv.chassis, d.archetype.chassis() as i32);
            assert_eq!(inv.bios_release_date.len(), 10);
            assert_eq!(inv.site, d.site);
            if d.archetype == Archetype::Server {
                assert!(inv.monitors.is_empty());
            }
            if d.archetype == Archetype::Desktop {
                assert!(!inv.monitors.is_empty());
            }
            let batch = veille_proto::v1::ReportBatch {
                device_id: d.device_id.clone(),
                reports: vec![],
                inventory: Some(inv),
                agent_version: "0.1.0".into(),
            };
            veille_proto::validate_batch(&batch, 1_800_000_000_000).unwrap();
        }
    }
}

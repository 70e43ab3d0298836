//! The example consortium as Docker containers, each node with an address of its own on a
//! private network, so that a test can cut one off and let it back in while its process keeps
//! running: a network partition, which killing a process cannot show.
//!
//! It runs what an operator runs: the image `docker/build-image.sh` builds from the `cachet`
//! binary of this build, the configs `cachet devnet --no-start --hosts` writes, and
//! `docker/compose.yml`. Traffic stays on the test's own bridge network.

use crate::{Nodes, ONE_AT_A_TIME, cachet_bin};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::MutexGuard;

/// The example consortium's validator nodes, as `docker/compose.yml` names its services.
const SERVICES: [&str; 4] = [
    "moi-land",
    "moea-investment",
    "dgpa-personnel",
    "moc-culture",
];

/// A node's container.
pub struct Container {
    /// Its compose service (the agency that runs it).
    pub service: &'static str,
    /// Its address on the consortium network (consensus and gossip).
    pub ip: String,
    /// Its RPC on the access network, which stays up when the consortium network is cut.
    pub rpc: String,
    id: String,
}

/// Four validators in containers, removed (with their network and image) on drop.
pub struct Consortium {
    /// The devnet directory the containers mount.
    pub dir: PathBuf,
    /// The nodes, in genesis order.
    pub nodes: Vec<Container>,
    project: String,
    image: String,
    /// The consortium network's first three octets, and the access network's.
    net: String,
    access_net: String,
    /// The consortium network's name.
    network: String,
    _serial: MutexGuard<'static, ()>,
}

fn docker_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docker")
}

fn run(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?} could not run: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

impl Consortium {
    /// Build the image, write the consortium for its addresses and start it with compose;
    /// wait until every node serves RPC.
    pub fn start(name: &str) -> Consortium {
        let serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        let engine = Command::new("docker")
            .args(["info", "--format", "{{.ServerVersion}}"])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            engine,
            "the container tests need a running Docker engine (`docker info` failed); .ci/run starts one"
        );
        let pid = std::process::id();
        let project = format!("cachet-{name}-{pid}");
        let image = format!("cachet-test:{name}-{pid}");
        let dir = std::env::temp_dir().join(&project);
        let _ = std::fs::remove_dir_all(&dir);
        run(Command::new(docker_dir().join("build-image.sh"))
            .arg(cachet_bin())
            .arg(&image));
        let mut consortium = Consortium {
            dir,
            nodes: Vec::new(),
            project,
            image,
            net: String::new(),
            access_net: String::new(),
            network: String::new(),
            _serial: serial,
        };
        // A /24 of 172.29.0.0/16 (consortium) and of 172.30.0.0/16 (access) that no other
        // network on this machine uses: compose refuses one that overlaps, and then the next
        // pair is tried.
        let mut tried = Vec::new();
        for attempt in 0..8 {
            let octet = (pid as usize + attempt * 37) % 250 + 1;
            consortium.net = format!("172.29.{octet}");
            consortium.access_net = format!("172.30.{octet}");
            let _ = std::fs::remove_dir_all(&consortium.dir);
            let hosts: Vec<String> = (0..SERVICES.len())
                .map(|i| format!("{}.{}", consortium.net, 11 + i))
                .collect();
            run(Command::new(cachet_bin())
                .args(["devnet", "--no-start", "--hosts", &hosts.join(","), "--dir"])
                .arg(&consortium.dir));
            let up = consortium
                .compose()
                .args(["up", "-d"])
                .output()
                .expect("compose");
            if up.status.success() {
                break;
            }
            tried.push(String::from_utf8_lossy(&up.stderr).to_string());
            let _ = consortium.compose().args(["down", "-v"]).output();
            assert!(attempt < 7, "compose up failed:\n{}", tried.join("\n"));
        }
        for (i, service) in SERVICES.iter().enumerate() {
            let id = stdout(&run(consortium.compose().args(["ps", "-q", service])));
            consortium.nodes.push(Container {
                service,
                ip: format!("{}.{}", consortium.net, 11 + i),
                rpc: format!("{}.{}:26657", consortium.access_net, 11 + i),
                id,
            });
        }
        let networks = stdout(&run(Command::new("docker").args([
            "inspect",
            "--format",
            "{{range $name, $_ := .NetworkSettings.Networks}}{{$name}} {{end}}",
            &consortium.nodes[0].id,
        ])));
        consortium.network = networks
            .split_whitespace()
            .find(|n| n.ends_with("_consortium"))
            .unwrap_or_else(|| panic!("no consortium network among {networks}"))
            .to_string();
        for i in 0..consortium.nodes.len() {
            consortium.wait_serving(i);
        }
        consortium
    }

    fn compose(&self) -> Command {
        let mut command = Command::new("docker-compose");
        command
            .arg("--project-name")
            .arg(&self.project)
            .arg("--file")
            .arg(docker_dir().join("compose.yml"))
            .env("CACHET_IMAGE", &self.image)
            .env("CACHET_DEVNET", &self.dir)
            .env("CACHET_NET", &self.net)
            .env("CACHET_ACCESS_NET", &self.access_net);
        command
    }

    /// Cut node `i` off the consortium network; its process keeps running.
    pub fn isolate(&self, i: usize) {
        run(Command::new("docker").args([
            "network",
            "disconnect",
            "--force",
            &self.network,
            &self.nodes[i].id,
        ]));
    }

    /// Let node `i` back in, at its old address.
    pub fn reconnect(&self, i: usize) {
        run(Command::new("docker").args([
            "network",
            "connect",
            "--ip",
            &self.nodes[i].ip,
            &self.network,
            &self.nodes[i].id,
        ]));
    }

    /// Docker's view of node `i`'s health check (`cachet probe`, in `docker/compose.yml`):
    /// `starting`, `healthy` or `unhealthy`.
    pub fn health(&self, i: usize) -> String {
        stdout(&run(Command::new("docker").args([
            "inspect",
            "--format",
            "{{.State.Health.Status}}",
            &self.nodes[i].id,
        ])))
        .trim()
        .to_string()
    }

    /// Run `cachet args...` inside node `i`'s container (its own loopback is reachable there
    /// only), as an operator does with `docker exec`.
    pub fn exec(&self, i: usize, args: &[&str]) -> Output {
        Command::new("docker")
            .args(["exec", &self.nodes[i].id, "/usr/local/bin/cachet"])
            .args(args)
            .output()
            .expect("docker exec runs")
    }
}

impl Nodes for Consortium {
    fn count(&self) -> usize {
        self.nodes.len()
    }

    fn name(&self, i: usize) -> &str {
        self.nodes[i].service
    }

    fn log_tail(&self, i: usize) -> String {
        Command::new("docker")
            .args(["logs", "--tail", "40", &self.nodes[i].id])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr)
            })
            .unwrap_or_default()
    }

    fn rpc_addr(&self, i: usize) -> &str {
        &self.nodes[i].rpc
    }
}

impl Drop for Consortium {
    fn drop(&mut self) {
        let _ = self.compose().args(["down", "-v", "-t", "5"]).output();
        let _ = Command::new("docker")
            .args(["image", "rm", "--force", &self.image])
            .output();
        if std::env::var_os("CACHET_KEEP_TEST_DIR").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

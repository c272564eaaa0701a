//! The command line an emperor gives a vassal (spec config.md §9.1): the
//! templates before the vassal file, the `vassal-set` values, the file
//! with the flag its suffix asks for, then the templates after it.

use super::Config;

/// The emperor options that shape a vassal's argv.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VassalArgs {
    /// `emperor-wrapper`, else the emperor's own binary.
    pub binary: Vec<u8>,
    pub inherit_before: Vec<Vec<u8>>,
    pub include_before: Vec<Vec<u8>>,
    pub set: Vec<Vec<u8>>,
    pub inherit: Vec<Vec<u8>>,
    pub include: Vec<Vec<u8>>,
    /// `emperor-extra-extension` suffixes (loaded with `--config`).
    pub extra_extensions: Vec<Vec<u8>>,
}

impl VassalArgs {
    /// Reads the emperor's options from its resolved config.
    pub fn from_config(config: &Config, own_binary: &[u8]) -> VassalArgs {
        let list = |keys: &[&str]| -> Vec<Vec<u8>> {
            config
                .applied
                .iter()
                .filter(|a| keys.iter().any(|k| a.key == k.as_bytes()))
                .map(|a| a.value.clone().unwrap_or_default())
                .collect()
        };
        let binary = match config.last("emperor-wrapper") {
            Some(Some(w)) => w.to_vec(),
            _ => own_binary.to_vec(),
        };
        VassalArgs {
            binary,
            inherit_before: list(&["vassals-inherit-before"]),
            include_before: list(&["vassals-include-before"]),
            set: list(&["vassal-set", "vassals-set"]),
            inherit: list(&["vassals-inherit"]),
            include: list(&["vassals-include"]),
            extra_extensions: list(&["emperor-extra-extension"]),
        }
    }

    /// The flag that loads a vassal file, chosen by its suffix.
    pub fn load_flag(&self, name: &[u8]) -> &'static str {
        let ends = |s: &[u8]| name.ends_with(s);
        if ends(b".ini") {
            "--ini"
        } else if ends(b".xml") {
            "--xml"
        } else if ends(b".yml") || ends(b".yaml") {
            "--yaml"
        } else if ends(b".js") || ends(b".json") {
            "--json"
        } else if self
            .extra_extensions
            .iter()
            .any(|e| !e.is_empty() && name.ends_with(e))
        {
            "--config"
        } else {
            "--inherit"
        }
    }

    /// The whole argv, program first.
    pub fn argv(&self, name: &[u8]) -> Vec<Vec<u8>> {
        let mut argv = vec![self.binary.clone()];
        let mut pairs = |flag: &str, values: &[Vec<u8>]| {
            for v in values {
                argv.push(flag.as_bytes().to_vec());
                argv.push(v.clone());
            }
        };
        pairs("--inherit", &self.inherit_before);
        pairs("--include", &self.include_before);
        pairs("--set", &self.set);
        pairs(self.load_flag(name), &[name.to_vec()]);
        pairs("--inherit", &self.inherit);
        pairs("--include", &self.include);
        argv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<Vec<u8>> {
        v.iter().map(|x| x.as_bytes().to_vec()).collect()
    }

    #[test]
    fn spec_example() {
        // spec config.md §9.1, observed with uWSGI 2.0.21
        let args = VassalArgs {
            binary: b"/tmp/example/emp/wrap.sh".to_vec(),
            inherit_before: s(&["/tmp/example/emp/inhb.ini"]),
            include_before: s(&["/tmp/example/emp/incb.ini"]),
            set: s(&["a=1", "b=%(a) two"]),
            inherit: s(&["/tmp/example/emp/inh.ini"]),
            include: s(&["/tmp/example/emp/inc.ini"]),
            extra_extensions: vec![],
        };
        let want = s(&[
            "/tmp/example/emp/wrap.sh",
            "--inherit",
            "/tmp/example/emp/inhb.ini",
            "--include",
            "/tmp/example/emp/incb.ini",
            "--set",
            "a=1",
            "--set",
            "b=%(a) two",
            "--ini",
            "app.ini",
            "--inherit",
            "/tmp/example/emp/inh.ini",
            "--include",
            "/tmp/example/emp/inc.ini",
        ]);
        assert_eq!(args.argv(b"app.ini"), want);
    }

    #[test]
    fn flags_by_suffix() {
        let args = VassalArgs {
            extra_extensions: s(&[".conf"]),
            ..VassalArgs::default()
        };
        let cases = [
            ("a.ini", "--ini"),
            ("a.xml", "--xml"),
            ("a.yml", "--yaml"),
            ("a.yaml", "--yaml"),
            ("a.js", "--json"),
            ("a.json", "--json"),
            ("a.conf", "--config"),
            ("a.txt", "--inherit"),
        ];
        for (name, flag) in cases {
            assert_eq!(args.load_flag(name.as_bytes()), flag, "{name}");
        }
    }
}

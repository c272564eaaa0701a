//! Monitor choice and the vassal file rules of spec §1.3.

use super::*;

struct Tmp(PathBuf);

impl Tmp {
    fn new(tag: &str) -> Tmp {
        let p = std::env::temp_dir().join(format!("ruwsgi-monitor-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Tmp(std::fs::canonicalize(&p).unwrap())
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const OPTS: StatOpts = StatOpts {
    extra_extensions: &[],
    nofollow: false,
    tyrant_nofollow: false,
};

fn names(scan: Scan) -> Vec<String> {
    let Scan::Files(files) = scan else {
        panic!("unavailable")
    };
    let mut v: Vec<String> = files
        .into_iter()
        .map(|(n, _)| String::from_utf8(n).unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn vassal_names() {
    let extra = vec![b".conf".to_vec()];
    let cases: &[(&str, bool)] = &[
        ("a.ini", true),
        ("b.xml", true),
        ("c.yml", true),
        ("d.json", true),
        ("e.js", true),
        ("f.yaml", true),
        (".h.ini", true),
        ("g.conf", true),
        ("x.ini.bak", false),
        ("dir.ini/", false),
        ("noext", false),
    ];
    for (name, want) in cases {
        assert_eq!(is_vassal_name(name.as_bytes(), &extra), *want, "{name}");
    }
    let long = format!("{}.ini", "x".repeat(MAX_NAME));
    assert!(!is_vassal_name(long.as_bytes(), &[]));
}

#[test]
fn dir_pick_up_spec_test_1() {
    let t = Tmp::new("dir");
    let d = &t.0;
    for f in [
        "a.ini",
        "b.xml",
        "c.yml",
        "d.json",
        "e.js",
        "f.yaml",
        ".h.ini",
        "x.ini.bak",
        "g.conf",
    ] {
        std::fs::write(d.join(f), b"[uwsgi]\n").unwrap();
    }
    std::fs::write(d.join("target"), b"").unwrap();
    std::os::unix::fs::symlink(d.join("target"), d.join("link.ini")).unwrap();
    std::os::unix::fs::symlink(d.join("nowhere"), d.join("broken.ini")).unwrap();
    std::os::unix::fs::symlink(d.join("loop.ini"), d.join("loop.ini")).unwrap();
    std::fs::create_dir(d.join("dir.ini")).unwrap();
    std::fs::create_dir(d.join("sub")).unwrap();
    std::fs::write(d.join("sub/y.ini"), b"").unwrap();
    let mut m = Monitor::new(d.as_os_str().as_bytes(), Path::new("/"));
    assert_eq!(m.kind, Kind::Dir);
    assert_eq!(m.label(), d.as_os_str().as_bytes());
    assert_eq!(m.vassal_cwd(), *d);
    assert_eq!(
        names(m.scan(&OPTS)),
        vec![".h.ini", "a.ini", "b.xml", "c.yml", "d.json", "e.js", "f.yaml", "link.ini"]
    );
    let nofollow = StatOpts {
        nofollow: true,
        ..OPTS
    };
    let with_links = names(m.scan(&nofollow));
    assert!(
        with_links.contains(&"broken.ini".to_string())
            && with_links.contains(&"loop.ini".to_string())
    );
    let extra = [b".conf".to_vec()];
    assert!(names(m.scan(&StatOpts {
        extra_extensions: &extra,
        ..OPTS
    }))
    .contains(&"g.conf".to_string()));
}

#[test]
fn glob_monitor_names_are_paths() {
    let t = Tmp::new("glob");
    std::fs::create_dir(t.0.join("vassals")).unwrap();
    std::fs::write(t.0.join("vassals/a.ini"), b"").unwrap();
    std::fs::write(t.0.join("vassals/.h.ini"), b"").unwrap();
    let pattern = format!("{}/vassals/*.ini", t.0.display());
    let mut m = Monitor::new(pattern.as_bytes(), Path::new("/"));
    assert_eq!(m.kind, Kind::Glob);
    assert_eq!(
        names(m.scan(&OPTS)),
        vec![format!("{}/vassals/a.ini", t.0.display())]
    );
    assert_eq!(m.glob_dir(), Some(t.0.join("vassals")));
    assert_eq!(m.label(), pattern.as_bytes());
    let forced = Monitor::new(
        format!("glob://{}", t.0.join("vassals").display()).as_bytes(),
        Path::new("/"),
    );
    assert_eq!(forced.kind, Kind::Glob);
    let single = Monitor::new(
        t.0.join("vassals/a.ini").as_os_str().as_bytes(),
        Path::new("/"),
    );
    assert_eq!(single.kind, Kind::Glob, "a plain file is a one-file glob");
}

#[test]
fn missing_directory_waits_for_it() {
    let t = Tmp::new("missing");
    let want = t.0.join("later");
    let mut m = Monitor::new(want.as_os_str().as_bytes(), Path::new("/"));
    assert_eq!(m.kind, Kind::Dir);
    assert!(m.is_missing());
    let target = crate::emperor::watch::target(&m);
    assert_eq!(
        target,
        Some((
            t.0.clone(),
            crate::emperor::watch::Interest::Child(b"later".to_vec())
        ))
    );
    assert!(matches!(
        m.scan(&OPTS),
        Scan::Unavailable { first: false, .. }
    ));
    std::fs::create_dir(&want).unwrap();
    std::fs::write(want.join("a.ini"), b"").unwrap();
    assert_eq!(names(m.scan(&OPTS)), vec!["a.ini"]);
    let target = crate::emperor::watch::target(&m);
    assert_eq!(
        target,
        Some((want.clone(), crate::emperor::watch::Interest::Names))
    );
    std::fs::remove_dir_all(&want).unwrap();
    assert!(matches!(
        m.scan(&OPTS),
        Scan::Unavailable { first: true, .. }
    ));
    assert!(matches!(
        m.scan(&OPTS),
        Scan::Unavailable { first: false, .. }
    ));
    std::fs::create_dir(&want).unwrap();
    assert!(names(m.scan(&OPTS)).is_empty());
}

#[test]
fn full_precision_mtime() {
    let t = Tmp::new("mtime");
    let f = t.0.join("a.ini");
    std::fs::write(&f, b"").unwrap();
    let m = Monitor::new(t.0.as_os_str().as_bytes(), Path::new("/"));
    let set = |nanos: u32| {
        let t = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::new(1_700_000_000, nanos);
        std::fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(t)
            .unwrap();
        m.stat(b"a.ini", &OPTS).unwrap().mtime
    };
    let (first, second) = (set(100), set(200));
    assert!(
        second > first && second.secs == first.secs,
        "{first:?} -> {second:?}"
    );
    assert!(m.stat(b"gone.ini", &OPTS).is_none());
}

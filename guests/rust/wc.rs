// wc: Rust std on WASI. Counts lines, words and bytes of each file named in argv (or stdin),
// lists the directory named by $LIST_DIR, and exercises std::fs (create, write, read back,
// metadata, rename, remove) in $SCRATCH when set. Exit code 3 if any file could not be read.
use std::collections::HashMap;
use std::env;
use std::fs;
use std::io::{self, Read, Write};

fn count(data: &[u8]) -> (usize, usize, usize) {
    let text = String::from_utf8_lossy(data);
    (text.lines().count(), text.split_whitespace().count(), data.len())
}

fn main() {
    let mut status = 0;
    let args: Vec<String> = env::args().skip(1).collect();
    // HashMap's RandomState seeds itself from random_get.
    let mut seen: HashMap<String, usize> = HashMap::new();
    if args.is_empty() {
        let mut data = Vec::new();
        io::stdin().read_to_end(&mut data).expect("stdin");
        let (l, w, b) = count(&data);
        println!("{l} {w} {b} -");
    }
    for name in &args {
        match fs::read(name) {
            Ok(data) => {
                let (l, w, b) = count(&data);
                *seen.entry(name.clone()).or_default() += 1;
                println!("{l} {w} {b} {name}");
            }
            Err(e) => {
                eprintln!("wc: {name}: {}", e.kind_code());
                status = 3;
            }
        }
    }
    if let Ok(dir) = env::var("LIST_DIR") {
        let mut names: Vec<String> = fs::read_dir(&dir).expect("read_dir").map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        println!("ls {dir}: {}", names.join(" "));
    }
    if let Ok(dir) = env::var("SCRATCH") {
        let a = format!("{dir}/rust-a.txt");
        let b = format!("{dir}/rust-b.txt");
        fs::write(&a, b"written by rust\n").expect("write");
        let back = fs::read_to_string(&a).expect("read back");
        let len = fs::metadata(&a).expect("metadata").len();
        fs::rename(&a, &b).expect("rename");
        let gone = fs::metadata(&a).is_err();
        fs::remove_file(&b).expect("remove");
        println!("fs: {} {len} renamed-away={gone}", back.trim_end());
        match fs::read("/etc/passwd") {
            Ok(_) => println!("ESCAPED"),
            Err(e) => println!("/etc/passwd: {}", e.kind_code()),
        }
    }
    io::stdout().flush().unwrap();
    std::process::exit(status);
}

trait KindCode {
    fn kind_code(&self) -> String;
}
impl KindCode for io::Error {
    fn kind_code(&self) -> String {
        match self.raw_os_error() {
            Some(code) => format!("errno {code}"),
            None => format!("{:?}", self.kind()),
        }
    }
}

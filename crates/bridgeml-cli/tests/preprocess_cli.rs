//! The `bridgeml` commands of issue 2, end to end: `preprocess`, `hash`,
//! `parity`, `spec hash|check|fit`, against the Pillow/OpenCV/numpy fixtures of
//! scripts/fixtures/make_pipeline_fixtures.py; exit codes 0/1/2.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bridgeml_core::Tensor;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_bridgeml");

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn spec(name: &str) -> PathBuf {
    root().join("examples/specs").join(name)
}

fn photo(name: &str) -> PathBuf {
    root().join("tests/fixtures/images").join(name)
}

fn photos() -> Vec<PathBuf> {
    ["chelsea.png", "china.jpg", "coffee.png", "flower.jpg"]
        .iter()
        .map(|n| photo(n))
        .collect()
}

fn expected() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/fixtures/pipeline/expected.json")).unwrap(),
    )
    .unwrap()
}

fn run<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = Command::new(BIN).args(args).output().expect("run bridgeml");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "bridgeml panicked:\n{stderr}");
    out
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited normally")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ok(out: Output) -> Output {
    assert_eq!(
        code(&out),
        0,
        "stdout:\n{}\nstderr:\n{}",
        stdout(&out),
        stderr(&out)
    );
    out
}

fn preprocess(spec: &Path, inputs: &[PathBuf], until: Option<&str>, out: &Path) -> Tensor {
    let mut args: Vec<std::ffi::OsString> = vec!["preprocess".into(), "--spec".into(), spec.into()];
    args.push("--input".into());
    args.extend(inputs.iter().map(|p| p.into()));
    args.extend(["--output".into(), out.into()]);
    if let Some(u) = until {
        args.extend(["--until".into(), u.into()]);
    }
    ok(run(&args));
    Tensor::read_npy(out).unwrap()
}

fn assert_stage(t: &Tensor, exp: &Value, what: &str) {
    assert_eq!(t.dtype().name(), exp["dtype"].as_str().unwrap(), "{what}");
    let shape: Vec<usize> = exp["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(t.shape(), shape.as_slice(), "{what}");
    assert_eq!(t.content_hash(), exp["hash"].as_str().unwrap(), "{what}");
}

#[test]
fn preprocess_equals_pillow_and_opencv_pipelines() {
    let exp = expected();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.npy");
    for (s, lib) in [
        ("imagenet_pil.toml", "pil"),
        ("imagenet_opencv.toml", "opencv"),
    ] {
        for p in photos() {
            let t = preprocess(&spec(s), std::slice::from_ref(&p), None, &out);
            let stem = p.file_stem().unwrap().to_str().unwrap();
            assert_stage(&t, &exp[lib][stem]["layout"], &format!("{s} {stem}"));
        }
        // bit for bit with the committed numpy file (the .npy bytes too: same header)
        preprocess(&spec(s), &[photo("china.jpg")], None, &out);
        let ours = std::fs::read(&out).unwrap();
        let theirs =
            std::fs::read(root().join(format!("tests/fixtures/pipeline/{lib}/china.npy"))).unwrap();
        let (a, b) = (
            Tensor::from_npy_bytes(&ours).unwrap(),
            Tensor::from_npy_bytes(&theirs).unwrap(),
        );
        assert_eq!(a.to_le_bytes(), b.to_le_bytes());
        assert_eq!(a.shape(), b.shape());
    }
}

#[test]
fn until_writes_uint8_hwc_and_float_stages() {
    let exp = expected();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.npy");
    for (s, lib) in [
        ("imagenet_pil.toml", "pil"),
        ("imagenet_opencv.toml", "opencv"),
    ] {
        for (until, stage) in [
            ("decode", "decode"),
            ("0", "resize_shorter"),
            ("resize_shorter", "resize_shorter"),
            ("1", "center_crop"),
            ("center_crop", "center_crop"),
            ("2", "to_float"),
            ("normalize", "normalize"),
        ] {
            let t = preprocess(&spec(s), &[photo("flower.jpg")], Some(until), &out);
            assert_stage(
                &t,
                &exp[lib]["flower"][stage],
                &format!("{s} --until {until}"),
            );
            if ["decode", "resize_shorter", "center_crop"].contains(&stage) {
                assert_eq!(t.dtype().name(), "uint8");
                assert_eq!(t.shape().len(), 3);
                assert_eq!(t.shape()[2], 3, "HWC");
            }
        }
    }
    // the committed uint8 dump after the crop
    let t = preprocess(
        &spec("imagenet_pil.toml"),
        &[photo("china.jpg")],
        Some("center_crop"),
        &out,
    );
    let r = Tensor::read_npy(&root().join("tests/fixtures/pipeline/pil_u8/china.npy")).unwrap();
    assert_eq!(t, r);
    // a bad --until: exit 2, the choices listed
    let o = run([
        "preprocess".as_ref(),
        "--spec".as_ref(),
        spec("imagenet_pil.toml").as_os_str(),
        "--input".as_ref(),
        photo("china.jpg").as_os_str(),
        "--output".as_ref(),
        out.as_os_str(),
        "--until".as_ref(),
        "crop".as_ref(),
    ]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("center_crop"), "{}", stderr(&o));
}

#[test]
fn several_inputs_get_a_batch_axis_in_input_order() {
    let exp = expected();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("batch.npy");
    let inputs = photos();
    let t = preprocess(&spec("imagenet_pil.toml"), &inputs, None, &out);
    assert_eq!(t.shape(), &[4, 3, 224, 224]);
    for (item, p) in t.unstack().iter().zip(&inputs) {
        let stem = p.file_stem().unwrap().to_str().unwrap();
        assert_stage(item, &exp["pil"][stem]["layout"], stem);
    }
    let t = preprocess(
        &spec("imagenet_pil.toml"),
        &inputs[..2],
        Some("center_crop"),
        &out,
    );
    assert_eq!(t.shape(), &[2, 224, 224, 3]);
    assert_eq!(t.dtype().name(), "uint8");
    // different shapes cannot be stacked: exit 2
    let o = run([
        "preprocess".as_ref(),
        "--spec".as_ref(),
        spec("imagenet_pil.toml").as_os_str(),
        "--input".as_ref(),
        inputs[0].as_os_str(),
        inputs[1].as_os_str(),
        "--until".as_ref(),
        "decode".as_ref(),
        "--output".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("different shapes"), "{}", stderr(&o));
}

#[test]
fn hash_is_the_content_hash_of_the_output() {
    let exp = expected();
    let dir = tempfile::tempdir().unwrap();
    let mut args: Vec<std::ffi::OsString> = vec![
        "hash".into(),
        "--spec".into(),
        spec("imagenet_pil.toml").into(),
        "--format".into(),
        "json".into(),
        "--input".into(),
    ];
    args.extend(photos().iter().map(|p| p.into()));
    let o = ok(run(&args));
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let fp = ok(run([
        "spec",
        "hash",
        spec("imagenet_pil.toml").to_str().unwrap(),
    ]));
    assert_eq!(
        report["spec_fingerprint"].as_str().unwrap(),
        stdout(&fp).trim()
    );
    let rows = report["results"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    for (row, p) in rows.iter().zip(photos()) {
        let stem = p.file_stem().unwrap().to_str().unwrap();
        let out = dir.path().join(format!("{stem}.npy"));
        let t = preprocess(
            &spec("imagenet_pil.toml"),
            std::slice::from_ref(&p),
            None,
            &out,
        );
        assert_eq!(row["input_hash"].as_str().unwrap(), t.content_hash());
        assert_eq!(row["input_hash"], exp["pil"][stem]["layout"]["hash"]);
        assert_eq!(row["dtype"], "float32");
        assert_eq!(row["shape"], serde_json::json!([3, 224, 224]));
    }
    // table output carries the same hashes
    let o = ok(run([
        "hash",
        "--spec",
        spec("imagenet_pil.toml").to_str().unwrap(),
        "--input",
        photo("china.jpg").to_str().unwrap(),
    ]));
    assert!(stdout(&o).contains(exp["pil"]["china"]["layout"]["hash"].as_str().unwrap()));
}

/// Full reference directories for all photos: the committed numpy file for
/// china, and for the other photos the engine's output after checking that
/// its content hash equals the hash of the Python output (so the bytes are
/// the Python bytes).
fn reference_dirs(tmp: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let exp = expected();
    let inputs = tmp.join("inputs");
    std::fs::create_dir_all(&inputs).unwrap();
    for p in photos() {
        std::fs::copy(&p, inputs.join(p.file_name().unwrap())).unwrap();
    }
    let mut dirs = Vec::new();
    for (s, lib) in [
        ("imagenet_pil.toml", "pil"),
        ("imagenet_opencv.toml", "opencv"),
    ] {
        let d = tmp.join(lib);
        std::fs::create_dir_all(&d).unwrap();
        for p in photos() {
            let stem = p.file_stem().unwrap().to_str().unwrap();
            let dst = d.join(format!("{stem}.npy"));
            let committed = root().join(format!("tests/fixtures/pipeline/{lib}/{stem}.npy"));
            if committed.exists() {
                std::fs::copy(&committed, &dst).unwrap();
            } else {
                let t = preprocess(&spec(s), std::slice::from_ref(&p), None, &dst);
                assert_stage(&t, &exp[lib][stem]["layout"], stem);
            }
        }
        dirs.push(d);
    }
    let d2 = dirs.pop().unwrap();
    (inputs, dirs.pop().unwrap(), d2)
}

#[test]
fn parity_passes_on_its_own_library_and_diagnoses_the_other() {
    let tmp = tempfile::tempdir().unwrap();
    let (inputs, pil, opencv) = reference_dirs(tmp.path());
    for (s, own, other, variant, says) in [
        (
            "imagenet_pil.toml",
            &pil,
            &opencv,
            "resize_shorter compat=opencv filter=bilinear",
            "compat=pil filter=bilinear",
        ),
        (
            "imagenet_opencv.toml",
            &opencv,
            &pil,
            "resize_shorter compat=pil filter=bilinear",
            "compat=opencv filter=bilinear",
        ),
    ] {
        let sp = spec(s);
        let o = run([
            "parity".as_ref(),
            "--spec".as_ref(),
            sp.as_os_str(),
            "--reference".as_ref(),
            own.as_os_str(),
            "--inputs".as_ref(),
            inputs.as_os_str(),
        ]);
        assert_eq!(code(&o), 0, "{s}: {}{}", stdout(&o), stderr(&o));
        assert!(
            stdout(&o).contains("4 of 4 inputs match exactly"),
            "{}",
            stdout(&o)
        );
        assert!(stdout(&o).contains("PASS"));

        let o = run([
            "parity".as_ref(),
            "--spec".as_ref(),
            sp.as_os_str(),
            "--reference".as_ref(),
            other.as_os_str(),
            "--inputs".as_ref(),
            inputs.as_os_str(),
            "--format".as_ref(),
            "json".as_ref(),
        ]);
        assert_eq!(code(&o), 1, "{s}: {}{}", stdout(&o), stderr(&o));
        let r: Value = serde_json::from_str(&stdout(&o)).unwrap();
        check_reference_schema(&r);
        let summary = &r["summary"];
        assert_eq!(summary["inputs"], 4);
        assert_eq!(summary["exact"], 0);
        assert_eq!(summary["pass"], false);
        let expect = format!("reference matches {variant} exactly; spec says {says}");
        assert_eq!(summary["diagnosis"].as_str().unwrap(), expect);
        for res in r["results"].as_array().unwrap() {
            assert_eq!(res["stage"], "4:layout");
            assert_eq!(res["exact"], false);
            assert!(res["max_abs_diff"].as_f64().unwrap() > 0.0);
            let best = &res["diagnosis"]["best"];
            assert_eq!(best["variant"], variant);
            assert_eq!(best["exact"], true);
        }
    }
    // human table names the variant too
    let o = run([
        "parity".as_ref(),
        "--spec".as_ref(),
        spec("imagenet_pil.toml").as_os_str(),
        "--reference".as_ref(),
        opencv.as_os_str(),
        "--inputs".as_ref(),
        photo("china.jpg").as_os_str(),
    ]);
    assert_eq!(code(&o), 1);
    assert!(
        stdout(&o).contains(
            "diagnosis: reference matches resize_shorter compat=opencv filter=bilinear exactly"
        ),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("FAIL"));
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

fn check_reference_schema(r: &Value) {
    assert_eq!(keys(r), ["results", "spec", "spec_fingerprint", "summary"]);
    assert_eq!(
        keys(&r["summary"]),
        [
            "diagnosis",
            "exact",
            "hash_match",
            "inputs",
            "max_abs_diff",
            "pass"
        ]
    );
    let res = &r["results"][0];
    assert_eq!(
        keys(res),
        [
            "diagnosis",
            "exact",
            "hash_match",
            "input",
            "max_abs_diff",
            "mean_abs_diff",
            "ours_dtype",
            "ours_shape",
            "pct_differing",
            "reference",
            "reference_dtype",
            "reference_shape",
            "shape_match",
            "stage",
        ]
    );
    assert_eq!(keys(&res["diagnosis"]), ["best", "candidates", "summary"]);
    assert_eq!(
        keys(&res["diagnosis"]["best"]),
        [
            "exact",
            "max_abs_diff",
            "mean_abs_diff",
            "pct_differing",
            "spec_says",
            "variant"
        ]
    );
}

#[test]
fn parity_on_uint8_dump_and_json_schema_of_a_pass() {
    let o = ok(run([
        "parity".as_ref(),
        "--spec".as_ref(),
        spec("imagenet_pil.toml").as_os_str(),
        "--reference".as_ref(),
        root().join("tests/fixtures/pipeline/pil_u8").as_os_str(),
        "--inputs".as_ref(),
        photo("china.jpg").as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]));
    let r: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(r["results"][0]["stage"], "1:center_crop");
    assert_eq!(r["results"][0]["diagnosis"], Value::Null);
    assert_eq!(r["summary"]["pass"], true);
    assert_eq!(r["summary"]["hash_match"], 1);
    // a missing reference: exit 2, naming the input
    let o = run([
        "parity".as_ref(),
        "--spec".as_ref(),
        spec("imagenet_pil.toml").as_os_str(),
        "--reference".as_ref(),
        root().join("tests/fixtures/pipeline/pil_u8").as_os_str(),
        "--inputs".as_ref(),
        photo("coffee.png").as_os_str(),
    ]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("coffee.png"), "{}", stderr(&o));
}

#[test]
fn parity_against_names_the_first_diverging_step() {
    let tmp = tempfile::tempdir().unwrap();
    let changed = tmp.path().join("changed_std.toml");
    std::fs::write(
        &changed,
        std::fs::read_to_string(spec("imagenet_pil.toml"))
            .unwrap()
            .replace("0.224", "0.2245"),
    )
    .unwrap();
    let inputs = root().join("tests/fixtures/images");
    for (other, step, op, rc) in [
        (
            spec("imagenet_opencv.toml"),
            Some(0),
            Some("resize_shorter"),
            1,
        ),
        (changed.clone(), Some(3), Some("normalize"), 1),
        (spec("imagenet_pil.toml"), None, None, 0),
    ] {
        let o = run([
            "parity".as_ref(),
            "--spec".as_ref(),
            spec("imagenet_pil.toml").as_os_str(),
            "--against".as_ref(),
            other.as_os_str(),
            "--inputs".as_ref(),
            inputs.as_os_str(),
            "--format".as_ref(),
            "json".as_ref(),
        ]);
        assert_eq!(code(&o), rc, "{}{}", stdout(&o), stderr(&o));
        let r: Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(
            keys(&r),
            ["against", "identical", "pass", "results", "spec"]
        );
        let results = r["results"].as_array().unwrap();
        assert_eq!(results.len(), 4);
        for res in results {
            assert_eq!(res["first_diverging_step"], serde_json::json!(step));
            assert_eq!(res["first_diverging_op"], serde_json::json!(op));
            assert!(res.get("final_comparison").is_some());
            assert!(res.get("stages_compared").is_some());
        }
    }
    let o = run([
        "parity".as_ref(),
        "--spec".as_ref(),
        spec("imagenet_pil.toml").as_os_str(),
        "--against".as_ref(),
        spec("imagenet_opencv.toml").as_os_str(),
        "--inputs".as_ref(),
        photo("china.jpg").as_os_str(),
    ]);
    assert_eq!(code(&o), 1);
    assert!(stdout(&o).contains("0:resize_shorter"), "{}", stdout(&o));
}

#[test]
fn spec_hash_is_stable_across_spellings() {
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("imagenet.json");
    std::fs::write(
        &json,
        r#"{"steps": [
            {"op": "resize_shorter", "size": 256},
            {"op": "center_crop", "width": 224, "height": 224},
            {"op": "to_float"},
            {"op": "normalize", "std": [0.229, 0.224, 0.225], "mean": [0.485, 0.456, 0.406]},
            {"op": "layout", "order": "chw"}],
          "input": {"kind": "image"}}"#,
    )
    .unwrap();
    let reordered = tmp.path().join("reordered.toml");
    std::fs::write(
        &reordered,
        "# comments and key order do not matter\n[[steps]]\ncompat = \"pil\"\nfilter = \"bilinear\"\nop = \"resize_shorter\"\nsize = 256\n\
         [[steps]]\nwidth = 224\nheight = 224\nop = \"center_crop\"\n[[steps]]\nop = \"to_float\"\nscale = 255\n\
         [[steps]]\nop = \"normalize\"\nstd = [0.229, 0.224, 0.225]\nmean = [0.485, 0.456, 0.406]\n\
         [[steps]]\nop = \"layout\"\norder = \"chw\"\n[input]\ncolor = \"rgb\"\nkind = \"image\"\n",
    )
    .unwrap();
    let changed = tmp.path().join("changed.toml");
    std::fs::write(
        &changed,
        std::fs::read_to_string(spec("imagenet_pil.toml"))
            .unwrap()
            .replace("size = 256", "size = 288"),
    )
    .unwrap();
    let h = |p: &Path| {
        stdout(&ok(run(["spec".as_ref(), "hash".as_ref(), p.as_os_str()])))
            .trim()
            .to_string()
    };
    let base = h(&spec("imagenet_pil.toml"));
    assert!(base.starts_with("sha256:") && base.len() == 71, "{base}");
    assert_eq!(h(&json), base);
    assert_eq!(h(&reordered), base);
    assert_ne!(h(&changed), base);
    assert_ne!(h(&spec("imagenet_opencv.toml")), base);
    let o = ok(run([
        "spec".as_ref(),
        "hash".as_ref(),
        json.as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]));
    let r: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(keys(&r), ["engine_format_version", "fingerprint", "spec"]);
    assert_eq!(r["fingerprint"], base);
    // check prints the canonical spec, which hashes the same
    let o = ok(run(["spec".as_ref(), "check".as_ref(), json.as_os_str()]));
    let canon = tmp.path().join("canon.toml");
    std::fs::write(&canon, stdout(&o)).unwrap();
    assert_eq!(h(&canon), base);
}

fn tab(name: &str) -> PathBuf {
    root().join("tests/fixtures/tabular").join(name)
}

#[test]
fn spec_fit_and_transform_equal_numpy_on_csv_and_parquet() {
    let exp: Value =
        serde_json::from_str(&std::fs::read_to_string(tab("expected.json")).unwrap()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut fingerprints = Vec::new();
    for data in ["train.csv", "train.parquet"] {
        let fitted = tmp.path().join(format!("{data}.fitted.toml"));
        ok(run([
            "spec".as_ref(),
            "fit".as_ref(),
            "--spec".as_ref(),
            spec("tabular.toml").as_os_str(),
            "--data".as_ref(),
            tab(data).as_os_str(),
            "--output".as_ref(),
            fitted.as_os_str(),
        ]));
        let s: Value = serde_json::from_str(&stdout(&ok(run([
            "spec".as_ref(),
            "check".as_ref(),
            fitted.as_os_str(),
            "--format".as_ref(),
            "json".as_ref(),
        ]))))
        .unwrap();
        let f = &exp["fitted"];
        let steps = &s["steps"];
        assert_eq!(steps[0]["values"][0], f["age_mean_impute"]);
        assert_eq!(steps[1]["values"][0], f["income_median_impute"]);
        assert_eq!(steps[4]["mean"], f["standardize_mean"]);
        assert_eq!(steps[4]["std"], f["standardize_std"]);
        assert_eq!(steps[5]["min"], f["min_max_min"]);
        assert_eq!(steps[5]["max"], f["min_max_max"]);
        assert_eq!(steps[6]["categories"], f["city_categories"]);
        assert_eq!(steps[7]["categories"], f["plan_categories"]);
        assert_eq!(steps[8]["categories"], f["tier_categories"]);
        fingerprints.push(stdout(&ok(run([
            "spec".as_ref(),
            "hash".as_ref(),
            fitted.as_os_str(),
        ]))));

        for (input, reference) in [
            (tab("train.csv"), "expected_train.npy"),
            (tab("train.parquet"), "expected_train.npy"),
            (tab("test.csv"), "expected_test.npy"),
        ] {
            let out = tmp.path().join("features.npy");
            let t = preprocess(&fitted, std::slice::from_ref(&input), None, &out);
            let r = Tensor::read_npy(&tab(reference)).unwrap();
            assert_eq!(t.shape(), r.shape(), "{}", input.display());
            assert_eq!(t.to_le_bytes(), r.to_le_bytes(), "{}", input.display());
        }
        // unseen category with unknown = "error": exit 2 naming file and value
        let o = run([
            "preprocess".as_ref(),
            "--spec".as_ref(),
            fitted.as_os_str(),
            "--input".as_ref(),
            tab("test_unseen_city.csv").as_os_str(),
            "--output".as_ref(),
            tmp.path().join("x.npy").as_os_str(),
        ]);
        assert_eq!(code(&o), 2);
        let e = stderr(&o);
        assert!(
            e.contains("test_unseen_city.csv") && e.contains("Marseille"),
            "{e}"
        );
    }
    assert_eq!(fingerprints[0], fingerprints[1]);
}

/// Every bad input: exit 2, a message naming the file, no panic.
#[test]
fn bad_inputs_exit_2_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let jpg = std::fs::read(photo("china.jpg")).unwrap();
    let png = std::fs::read(photo("chelsea.png")).unwrap();
    let mut corrupt = jpg.clone();
    corrupt[700..5000].iter_mut().for_each(|b| *b = 0xA5);
    let mut zero = png.clone();
    zero[16..20].copy_from_slice(&0u32.to_be_bytes()); // IHDR width 0
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("truncated.jpg", jpg[..jpg.len() / 2].to_vec()),
        ("truncated.png", png[..png.len() / 2].to_vec()),
        ("corrupt.jpg", corrupt),
        ("empty.png", Vec::new()),
        ("readme.jpg", b"not an image at all".to_vec()),
        ("zero_width.png", zero),
    ];
    let pil = spec("imagenet_pil.toml");
    let out = t.join("out.npy");
    let expect_fail = |args: Vec<std::ffi::OsString>, needles: &[&str]| {
        let o = run(&args);
        assert_eq!(code(&o), 2, "{args:?}: {}{}", stdout(&o), stderr(&o));
        let e = stderr(&o);
        assert!(e.starts_with("error: "), "{e}");
        for n in needles {
            assert!(e.contains(n), "{n:?} not in {e}");
        }
    };
    for (name, bytes) in &files {
        let p = t.join(name);
        std::fs::write(&p, bytes).unwrap();
        for cmd in ["preprocess", "hash"] {
            let mut args: Vec<std::ffi::OsString> = vec![
                cmd.into(),
                "--spec".into(),
                pil.clone().into(),
                "--input".into(),
                photo("coffee.png").into(),
                p.clone().into(),
            ];
            if cmd == "preprocess" {
                args.extend(["--output".into(), out.clone().into()]);
            }
            expect_fail(args, &[name]);
        }
    }
    assert!(!out.exists(), "no output written on error");
    // a missing file
    expect_fail(
        vec![
            "preprocess".into(),
            "--spec".into(),
            pil.clone().into(),
            "--input".into(),
            t.join("absent.jpg").into(),
            "--output".into(),
            out.clone().into(),
        ],
        &["absent.jpg"],
    );
    // over max_pixels
    let small = t.join("small_limit.toml");
    std::fs::write(
        &small,
        std::fs::read_to_string(&pil)
            .unwrap()
            .replace("color = \"rgb\"", "color = \"rgb\"\nmax_pixels = 200000"),
    )
    .unwrap();
    expect_fail(
        vec![
            "preprocess".into(),
            "--spec".into(),
            small.into(),
            "--input".into(),
            photo("china.jpg").into(),
            "--output".into(),
            out.clone().into(),
        ],
        &["china.jpg", "273280 pixels", "200000"],
    );
    // invalid specs
    let base = std::fs::read_to_string(&pil).unwrap();
    for (name, text, needle) in [
        (
            "unknown_op.toml",
            base.replace("op = \"center_crop\"", "op = \"centre_crop\""),
            "centre_crop",
        ),
        (
            "unknown_key.toml",
            base.replace("size = 256", "size = 256\nantialias = true"),
            "antialias",
        ),
        (
            "negative.toml",
            base.replace("size = 256", "size = -256"),
            "size must be positive",
        ),
        (
            "mean_std.toml",
            base.replace("mean = [0.485, 0.456, 0.406]", "mean = [0.485]"),
            "mean has 1 values and std has 3",
        ),
        (
            "std0.toml",
            base.replace("0.225]", "0.0]"),
            "std must be finite and non-zero",
        ),
        (
            "area_pil.toml",
            base.replace("filter = \"bilinear\"", "filter = \"area\""),
            "not available with compat = \"pil\"",
        ),
    ] {
        let p = t.join(name);
        std::fs::write(&p, text).unwrap();
        expect_fail(
            vec![
                "preprocess".into(),
                "--spec".into(),
                p.clone().into(),
                "--input".into(),
                photo("china.jpg").into(),
                "--output".into(),
                out.clone().into(),
            ],
            &[name, needle],
        );
        expect_fail(
            vec!["spec".into(), "hash".into(), p.clone().into()],
            &[name, needle],
        );
        expect_fail(
            vec![
                "parity".into(),
                "--spec".into(),
                p.into(),
                "--against".into(),
                pil.clone().into(),
                "--inputs".into(),
                photo("china.jpg").into(),
            ],
            &[name],
        );
    }
    // tabular: missing column, and an image given to a tabular spec
    let fitted = t.join("fitted.toml");
    ok(run([
        "spec".as_ref(),
        "fit".as_ref(),
        "--spec".as_ref(),
        spec("tabular.toml").as_os_str(),
        "--data".as_ref(),
        tab("train.csv").as_os_str(),
        "--output".as_ref(),
        fitted.as_os_str(),
    ]));
    let no_rooms = t.join("no_rooms.csv");
    let csv = std::fs::read_to_string(tab("test.csv")).unwrap();
    std::fs::write(
        &no_rooms,
        csv.lines()
            .map(|l| l.rsplit_once(',').unwrap().0.to_string() + "\n")
            .collect::<String>(),
    )
    .unwrap();
    expect_fail(
        vec![
            "preprocess".into(),
            "--spec".into(),
            fitted.clone().into(),
            "--input".into(),
            no_rooms.clone().into(),
            "--output".into(),
            out.clone().into(),
        ],
        &["no_rooms.csv", "\"rooms\" is missing"],
    );
    expect_fail(
        vec![
            "spec".into(),
            "fit".into(),
            "--spec".into(),
            spec("tabular.toml").into(),
            "--data".into(),
            no_rooms.into(),
            "--output".into(),
            t.join("f2.toml").into(),
        ],
        &["no_rooms.csv", "rooms"],
    );
    expect_fail(
        vec![
            "preprocess".into(),
            "--spec".into(),
            fitted.into(),
            "--input".into(),
            photo("china.jpg").into(),
            "--output".into(),
            out.clone().into(),
        ],
        &["china.jpg"],
    );
    expect_fail(
        vec![
            "spec".into(),
            "fit".into(),
            "--spec".into(),
            pil.clone().into(),
            "--data".into(),
            tab("train.csv").into(),
            "--output".into(),
            t.join("f3.toml").into(),
        ],
        &["tabular"],
    );
}

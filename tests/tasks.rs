//! The ready tasks (`lmscope run --task`), each run on the real model: the
//! messages it sends and the answer it gets are a snapshot, and the JSON
//! contract is checked. A user's tasks.toml adds and overrides tasks.

mod common;

use std::process::{Command, Output};

/// `lmscope run ARGS` with its own, empty config directory unless `config` is given.
fn run(args: &[&str], config: Option<&std::path::Path>) -> Output {
    common::model_path();
    let empty = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_lmscope"))
        .arg("run")
        .args(args)
        .env("LMSCOPE_CONFIG_DIR", config.unwrap_or(empty.path()))
        .output()
        .unwrap()
}

fn lines(o: &Output) -> Vec<serde_json::Value> {
    assert!(o.status.success(), "{}", common::stderr(o));
    common::stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Runs task `name` on its example (its own preset, seed 42, at most 32
/// tokens) and snapshots what was sent and what came back.
fn task(name: &str) {
    let out = lines(&run(&["--task", name, "--json", "-n", "32"], None));
    let head = &out[0];
    let done = out.last().unwrap();
    assert_eq!(head["task"], name);
    assert_eq!(done["done"], true);
    let steps = &out[1..out.len() - 1];
    assert_eq!(steps.len(), done["generated"].as_u64().unwrap() as usize);
    assert!(!steps.is_empty(), "{name}: no tokens");
    assert!(["length", "eos", "stop"].contains(&done["reason"].as_str().unwrap()));
    let messages: Vec<String> = head["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "[{}] {}",
                m["role"].as_str().unwrap(),
                m["content"].as_str().unwrap()
            )
        })
        .collect();
    insta::assert_snapshot!(
        format!("task_{name}"),
        format!(
            "preset: {}\n{}\n--- answer ({}, {} tokens) ---\n{}",
            head["preset"].as_str().unwrap(),
            messages.join("\n"),
            done["reason"].as_str().unwrap(),
            done["generated"],
            done["text"].as_str().unwrap()
        )
    );
}

#[test]
fn task_summarise() {
    task("summarise");
}
#[test]
fn task_translate() {
    task("translate");
}
#[test]
fn task_qa() {
    task("qa");
}
#[test]
fn task_dialogue() {
    task("dialogue");
}
#[test]
fn task_story() {
    task("story");
}
#[test]
fn task_code() {
    task("code");
}

#[test]
fn a_users_tasks_add_to_and_override_the_built_in_ones() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tasks.toml"),
        "[qa]\ndescription = \"Mine\"\npreset = \"greedy\"\nmax_tokens = 4\nexample = \"Why?\"\n\
         [[qa.messages]]\nrole = \"user\"\ncontent = \"Q: {input}\"\n\
         [haiku]\ndescription = \"A haiku\"\nexample = \"rain\"\n\
         [[haiku.messages]]\nrole = \"user\"\ncontent = \"Write a haiku about {input}\"\n",
    )
    .unwrap();
    let list = lines(&run(&["--list", "--json"], Some(dir.path())));
    assert_eq!(list[0]["qa"]["description"], "Mine");
    assert_eq!(list[0]["haiku"]["preset"], "balanced");
    assert!(list[0].get("translate").is_some());
    let out = lines(&run(
        &["--task", "qa", "Is water wet?", "--json"],
        Some(dir.path()),
    ));
    assert_eq!(out[0]["messages"][0]["content"], "Q: Is water wet?");
    assert!(out.last().unwrap()["generated"].as_u64().unwrap() <= 4);

    // A broken file is named, with the task and what is wrong.
    std::fs::write(
        dir.path().join("tasks.toml"),
        "[bad]\ndescription = \"d\"\nexample = \"e\"\nmessages = []\n",
    )
    .unwrap();
    let o = run(&["--task", "qa"], Some(dir.path()));
    common::assert_clean_error(&o, "task `bad`: it has no messages");
    let o = run(&["--task", "poem"], None);
    common::assert_clean_error(
        &o,
        "unknown task `poem`; known: code, dialogue, qa, story, summarise, translate",
    );
}

//! `mlops apply` and `mlops destroy`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use anyhow::Context as _;
use mlops_engine::{ApplyOptions, ApplyOutcome};
use mlops_plan::plan::FORMAT_VERSION;
use mlops_plan::{Operation, Plan, Summary};

use super::hinted;
use crate::cli::{ApplyArgs, DestroyArgs, Format};
use crate::session::{Session, reporter};

pub async fn run(config_path: &Path, args: ApplyArgs) -> anyhow::Result<u8> {
    let session = Session::open(config_path, "apply").await?;
    let (state, plan) = match &args.plan {
        Some(path) => {
            let plan = load_saved_plan(path)?;
            let state = check_saved_plan(&plan, path, &session)?;
            (state, plan)
        }
        None => session.plan_and_mint(Operation::Apply).await?,
    };
    execute(&session, state, plan, args.auto_approve || args.plan.is_some(), "apply").await
}

pub async fn destroy(config_path: &Path, args: DestroyArgs) -> anyhow::Result<u8> {
    let session = Session::open(config_path, "destroy").await?;
    let (state, plan) = session.plan_and_mint(Operation::Destroy).await?;
    execute(&session, state, plan, args.auto_approve, "destroy").await
}

async fn execute(session: &Session, state: mlops_state::State, plan: Plan, approved: bool, verb: &str) -> anyhow::Result<u8> {
    if verb == "destroy" && !plan.has_changes() {
        super::print_stdout("Nothing to destroy: the state records no object.\n")?;
        return Ok(0);
    }
    super::print_stdout(&super::plan::render_plan(&plan, Format::Text))?;
    if !plan.has_changes() {
        return Ok(0);
    }
    if !approved {
        confirm(verb)?;
    }

    let options = ApplyOptions { now: session.now };
    let result = mlops_engine::apply(&session.config, &plan, &session.workspaces, &session.store, state, options, reporter()).await;
    let saved = session.save_emulator();
    let (_, outcome) = result?;
    saved?;
    super::print_stdout(&complete_line(verb, &outcome))?;
    Ok(0)
}

fn complete_line(verb: &str, outcome: &ApplyOutcome) -> String {
    let title = if verb == "destroy" { "Destroy" } else { "Apply" };
    let mut line = format!("\n{title} complete! Resources: ");
    if outcome.imported > 0 {
        line.push_str(&format!("{} imported, ", outcome.imported));
    }
    line.push_str(&format!("{} added, {} changed, {} destroyed.", outcome.added, outcome.changed, outcome.destroyed));
    if outcome.rotated > 0 {
        line.push_str(&format!(" {} token(s) rotated.", outcome.rotated));
    }
    line.push('\n');
    line
}

/// Asks for `yes` on a terminal, and fails elsewhere because no one can answer the prompt.
fn confirm(verb: &str) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(hinted(
            format!("{verb} needs confirmation, and standard input is not a terminal"),
            format!("run `mlops {verb} --auto-approve`, or apply a reviewed plan with `mlops apply FILE`"),
        ));
    }
    eprint!("\nDo you want to perform these actions? Only 'yes' will be accepted.\n  Enter a value: ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() != "yes" {
        return Err(hinted(format!("{verb} cancelled"), "answer `yes` to go ahead"));
    }
    Ok(())
}

fn load_saved_plan(path: &Path) -> anyhow::Result<Plan> {
    let text = std::fs::read_to_string(path).with_context(|| format!("failed to read the plan file `{}`", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|error| {
        hinted(
            format!("the plan file `{}` is not valid JSON: {error}", path.display()),
            "make a new plan with `mlops plan --out FILE`",
        )
    })?;
    let version = value.get("format_version").and_then(serde_json::Value::as_u64);
    if version != Some(u64::from(FORMAT_VERSION)) {
        return Err(hinted(
            format!(
                "the plan file `{}` has format version {}, but this mlops reads version {FORMAT_VERSION}",
                path.display(),
                version.map_or_else(|| "(missing)".to_owned(), |version| version.to_string())
            ),
            "make a new plan with this mlops: `mlops plan --out FILE`",
        ));
    }
    let plan: Plan = serde_json::from_value(value).map_err(|error| {
        hinted(
            format!("the plan file `{}` is damaged: {error}", path.display()),
            "make a new plan with `mlops plan --out FILE`",
        )
    })?;

    if plan.summary != Summary::of(&plan.changes) {
        return Err(hinted(
            format!("the plan file `{}` is damaged: its summary does not match its list of changes", path.display()),
            "make a new plan with `mlops plan --out FILE`",
        ));
    }
    Ok(plan)
}

/// Refuses a saved plan made against another state or configuration than the current ones.
///
/// A missing state file is an error and is not created, so a rejected plan leaves no trace.
fn check_saved_plan(plan: &Plan, path: &Path, session: &Session) -> anyhow::Result<mlops_state::State> {
    let replan = "make a new plan with `mlops plan --out FILE`, review it, and apply that";
    let Some(state) = session.store.read()? else {
        return Err(hinted(
            format!(
                "the saved plan `{}` was made for state lineage {} at serial {}, but the state file `{}` does not exist",
                path.display(),
                plan.lineage,
                plan.serial,
                session.store.path().display()
            ),
            format!("restore the state file, or {replan}"),
        ));
    };
    if plan.lineage != state.lineage {
        return Err(hinted(
            format!(
                "the saved plan `{}` was made for state lineage {}, but the state `{}` has lineage {}",
                path.display(),
                plan.lineage,
                session.store.path().display(),
                state.lineage
            ),
            replan,
        ));
    }
    if plan.serial < state.serial {
        return Err(hinted(
            format!(
                "the saved plan `{}` is stale: it was made at state serial {}, and the state is now at serial {} (applied since, or changed)",
                path.display(),
                plan.serial,
                state.serial
            ),
            replan,
        ));
    }
    if plan.serial > state.serial {
        return Err(hinted(
            format!(
                "the saved plan `{}` was made at state serial {}, but the state `{}` is at serial {}: the state went back (restored from an older copy) or the plan was edited",
                path.display(),
                plan.serial,
                session.store.path().display(),
                state.serial
            ),
            format!("check which state file is current, then {replan}"),
        ));
    }
    if plan.config_sha256 != session.config.sha256 {
        return Err(hinted(
            format!("the configuration `{}` changed since the saved plan `{}` was made", session.config.path.display(), path.display()),
            replan,
        ));
    }
    if plan.operation != Operation::Apply {
        return Err(hinted(format!("the saved plan `{}` is not an apply plan", path.display()), replan));
    }
    Ok(state)
}

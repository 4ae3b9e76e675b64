//! `mlops plan`.

use std::path::Path;

use anyhow::Context as _;
use mlops_plan::{Operation, Plan, render};

use crate::cli::{Format, PlanArgs};
use crate::session::Session;

pub async fn run(config_path: &Path, args: PlanArgs) -> anyhow::Result<u8> {
    let session = Session::open(config_path, "plan").await?;
    let (_, plan) = session.plan_and_mint(Operation::Apply).await?;

    super::print_stdout(&render_plan(&plan, args.format.format))?;
    if let Some(path) = &args.out {
        save_plan(&plan, path)?;
        eprintln!("Saved the plan to {}. Apply exactly this plan with `mlops apply {}`.", path.display(), path.display());
    }
    Ok(if args.detailed_exitcode && plan.has_changes() { 2 } else { 0 })
}

/// Renders a plan in the requested format.
pub fn render_plan(plan: &Plan, format: Format) -> String {
    match format {
        Format::Text => render::text(plan, render::Palette::new(super::use_color())),
        Format::Json => render::json(plan),
        Format::Markdown => render::markdown(plan),
    }
}

/// Writes a plan file atomically with mode 0600.
pub fn save_plan(plan: &Plan, path: &Path) -> anyhow::Result<()> {
    use std::io::Write as _;
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(&folder).with_context(|| format!("failed to write the plan file `{}`", path.display()))?;
    file.write_all(render::json(plan).as_bytes())?;
    file.as_file().sync_all()?;
    file.persist(path).with_context(|| format!("failed to write the plan file `{}`", path.display()))?;
    Ok(())
}

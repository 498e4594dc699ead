//! Acceptance: headless Chromium (driven over WebDriver) shows the explorer page of a
//! validator, the page updates itself (the best block number rises without a reload),
//! and the reward paid for inference receipts at the epoch boundary appears in the
//! rewards table. The screenshot is kept in `target/test-artifacts/explorer.png`.

use neuroshard_tests::chain::{address, submit_dev_work};
use neuroshard_tests::spec::write_unchecked_dev_spec;
use neuroshard_tests::tools::artifact_path;
use neuroshard_tests::webdriver::Browser;
use neuroshard_tests::{wait_for, NodeProcess};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(90);
const EPOCH: u64 = 6;

/// What the page shows: its status line, the block numbers in the blocks table and
/// the rows of the rewards table (cell texts).
const READ_PAGE: &str = r#"
const rows = id => [...document.querySelectorAll('#' + id + ' tbody tr')]
  .map(tr => [...tr.cells].map(td => td.title || td.textContent));
return {
  status: document.getElementById('status').textContent,
  blocks: rows('blocks').map(r => Number(r[0])),
  hashes: rows('blocks').map(r => r[1]),
  authors: rows('blocks').map(r => r[2]),
  rewards: rows('rewards'),
  shards: rows('shards'),
};
"#;

#[test]
fn chromium_shows_blocks_and_rewards_live() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_unchecked_dev_spec(dir.path(), 300, EPOCH).unwrap();
    let node = NodeProcess::validator(&spec, dir.path(), "node.log").unwrap();
    let rpc = node.rpc();
    let browser = Browser::start(&dir.path().join("chromedriver.log")).unwrap();
    browser
        .navigate(&format!("http://127.0.0.1:{}/", node.api_port()))
        .unwrap();

    // Blocks appear, and keep coming while the page stays open.
    let first_best = wait_for("blocks on the page", TIMEOUT, || {
        let page = browser.execute(READ_PAGE)?;
        Ok(page["blocks"].as_array().and_then(|b| b.first()?.as_u64()))
    })
    .unwrap();
    wait_for("the page to update itself", TIMEOUT, || {
        let page = browser.execute(READ_PAGE)?;
        let best = page["blocks"][0].as_u64().unwrap_or(0);
        let status = page["status"].as_str().unwrap_or_default();
        Ok((best > first_best && status.contains(&format!("best #{best}"))).then_some(()))
    })
    .unwrap();
    // Each row's hash and author, decoded by the node from the Substrate-layout header
    // (the author from its digest): the canonical hash at that number, and //Alice.
    let page = browser.execute(READ_PAGE).unwrap();
    let (number, hash) = (&page["blocks"][0], &page["hashes"][0]);
    assert_eq!(
        &rpc.call("chain_getBlockHash", serde_json::json!([number]))
            .unwrap(),
        hash,
        "{page}"
    );
    assert_eq!(page["authors"][0], address("//Alice"), "{page}");

    // Receipts for 30 tokens through the 30-layer model pay //Alice 3 NSHD in the
    // first block of the epoch after their check window closes.
    let payout = submit_dev_work(&rpc, EPOCH, TIMEOUT).unwrap().payout;
    let alice = address("//Alice");
    let payout_cell = payout.to_string();
    let page = wait_for("the reward row", TIMEOUT, || {
        let page = browser.execute(READ_PAGE)?;
        let shown = page["rewards"].as_array().is_some_and(|rows| {
            rows.iter().any(|row| {
                row[0] == payout_cell.as_str()
                    && row[1] == alice.as_str()
                    && row[3] == "90"
                    && row[5] == "3"
            })
        });
        Ok(shown.then_some(page))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", browser.execute(READ_PAGE).unwrap_or_default()));
    let shards = page["shards"].as_array().unwrap();
    assert_eq!(
        shards.len(),
        3,
        "the dev worker serves three shards: {page}"
    );

    let screenshot = browser.screenshot().unwrap();
    assert!(screenshot.starts_with(b"\x89PNG"), "not a PNG");
    let path = artifact_path("explorer.png").unwrap();
    std::fs::write(&path, screenshot).unwrap();
    println!("explorer screenshot: {}", path.display());
}

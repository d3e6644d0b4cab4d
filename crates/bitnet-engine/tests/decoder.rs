//! The per-sequence decoder both front ends share: stop strings with OpenAI's semantics
//! (earliest occurrence of any, whatever the list order), stop ids, `max_tokens` and the
//! context limit, on the embedded model's real tokenizer.

use bitnet_engine::{Decoder, FinishReason, GenerationParams, LoadOptions, Model, ModelRef};

fn embedded() -> Model {
    Model::open(&ModelRef::Embedded, &LoadOptions::default()).unwrap()
}

/// Feeds `text`'s tokens to a decoder as if sampled; returns the output text and the finish.
fn feed(
    model: &Model,
    text: &str,
    params: GenerationParams,
) -> (String, Option<FinishReason>, usize) {
    let tok = model.tokenizer().unwrap();
    let ids = tok.encode(text, false, false).unwrap();
    let mut d = Decoder::new(&params, model.config().vocab_size, Some(tok), &[1]).unwrap();
    let mut out = String::new();
    for &id in &ids {
        let acc = d.accept(id, true).unwrap();
        out.push_str(&acc.text);
        if acc.finish.is_some() {
            break;
        }
    }
    assert_eq!(out, d.text());
    (out, d.finish_reason(), d.tokens().len())
}

fn stops(list: &[&str]) -> GenerationParams {
    GenerationParams {
        max_tokens: 1000,
        stop_strings: list.iter().map(|s| s.to_string()).collect(),
        ..GenerationParams::default()
    }
}

#[test]
fn stop_strings_cut_at_the_earliest_occurrence_of_any() {
    let model = embedded();
    for list in [&["\n\n", "."][..], &[".", "\n\n"][..]] {
        let (text, finish, _) = feed(&model, "fn main() {}.\n\nMore text", stops(list));
        assert_eq!(text, "fn main() {}", "stops {list:?}");
        assert_eq!(finish, Some(FinishReason::StopString));
        let (text, finish, _) = feed(&model, "let x = 1\n\nlet y = 2.", stops(list));
        assert_eq!(text, "let x = 1", "stops {list:?}");
        assert_eq!(finish, Some(FinishReason::StopString));
    }
}

#[test]
fn without_a_stop_the_whole_text_comes_out_once_generation_ends() {
    let model = embedded();
    let text = "The borrow checker. It checks";
    let n = model
        .tokenizer()
        .unwrap()
        .encode(text, false, false)
        .unwrap()
        .len();
    let params = GenerationParams {
        max_tokens: n,
        ..stops(&["never appears"])
    };
    let (out, finish, generated) = feed(&model, text, params);
    assert_eq!(out, text);
    assert_eq!(finish, Some(FinishReason::Length));
    assert_eq!(generated, n);
}

#[test]
fn stop_ids_end_without_being_output_and_flush_held_text() {
    let model = embedded();
    let tok = model.tokenizer().unwrap();
    let ids = tok.encode("abc EN", false, false).unwrap();
    let params = GenerationParams {
        stop_ids: vec![7],
        ..stops(&["END"])
    };
    let mut d = Decoder::new(&params, model.config().vocab_size, Some(tok), &[1]).unwrap();
    let mut out = String::new();
    for &id in &ids {
        out.push_str(&d.accept(id, true).unwrap().text);
    }
    assert_eq!(out, "abc ", "a possible start of END is held back");
    let last = d.accept(7, true).unwrap();
    assert_eq!(last.id, None);
    assert_eq!(last.text, "EN");
    assert_eq!(last.finish, Some(FinishReason::StopToken));
    assert_eq!(d.tokens(), &ids[..]);
}

#[test]
fn a_full_context_ends_generation_after_the_token() {
    let model = embedded();
    let tok = model.tokenizer().unwrap();
    let mut d = Decoder::new(&stops(&[]), model.config().vocab_size, Some(tok), &[1]).unwrap();
    let acc = d.accept(300, false).unwrap();
    assert_eq!(acc.id, Some(300));
    assert_eq!(acc.finish, Some(FinishReason::ContextFull));
}

#[test]
fn finish_reason_names_round_trip() {
    for r in FinishReason::ALL {
        assert_eq!(FinishReason::from_name(r.as_str()), Some(r));
    }
}
